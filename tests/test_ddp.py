"""The graph layers under DistributedDataParallel: two CPU processes (gloo) vs one process."""
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn.functional as F
from torch.nn.parallel import DistributedDataParallel

from gridgnn.models import GridResNet


def make_batch():
    gen = torch.Generator().manual_seed(1)
    return torch.randn(8, 1, 8, 8, generator=gen, dtype=torch.float64), torch.randint(10, (8,), generator=gen)


def make_model():
    torch.manual_seed(0)
    return GridResNet(widths=(8, 16)).double()


def worker(rank, world, init_file, out_dir):
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        model = DistributedDataParallel(make_model())
        images, labels = make_batch()
        loss = F.cross_entropy(model(images[rank::world]), labels[rank::world])
        loss.backward()
        torch.save({n: p.grad for n, p in model.module.named_parameters()}, f"{out_dir}/grads{rank}.pt")
    finally:
        dist.destroy_process_group()


def test_ddp_gradients_equal_single_process(tmp_path):
    world = 2
    mp.spawn(worker, args=(world, str(tmp_path / "rendezvous"), str(tmp_path)), nprocs=world, join=True)
    # single process: the average of each shard's gradient is what DDP must give every rank
    model = make_model()
    images, labels = make_batch()
    expected = {n: torch.zeros_like(p) for n, p in model.named_parameters()}
    for rank in range(world):
        model.zero_grad()
        F.cross_entropy(model(images[rank::world]), labels[rank::world]).backward()
        for n, p in model.named_parameters():
            expected[n] += p.grad / world
    for rank in range(world):
        grads = torch.load(tmp_path / f"grads{rank}.pt")
        assert set(grads) == set(expected)
        for n in expected:
            torch.testing.assert_close(grads[n], expected[n], msg=f"rank {rank}: {n}")
