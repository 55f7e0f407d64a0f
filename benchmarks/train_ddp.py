"""Data-parallel training of a GridResNet on scikit-learn's digits with DistributedDataParallel.

Run with torchrun (gloo on CPU, nccl on GPU):

    torchrun --standalone --nproc_per_node=2 benchmarks/train_ddp.py --epochs 3

Rank 0 prints the loss per epoch and the time, and writes benchmarks/results/train_ddp.md.
"""
from __future__ import annotations

import argparse
import os
import sys
import time

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, DistributedSampler, TensorDataset

from gridgnn.models import GridResNet
from gridgnn.training import digits_dataset

from _common import markdown_table, write_result


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=32, help="per process")
    args = parser.parse_args(argv)
    cuda = torch.cuda.is_available()
    dist.init_process_group("nccl" if cuda else "gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0))) if cuda else torch.device("cpu")
    if cuda:
        torch.cuda.set_device(device)
    torch.manual_seed(0)
    model = DistributedDataParallel(GridResNet().to(device), device_ids=[device.index] if cuda else None)
    images, labels = digits_dataset()
    data = TensorDataset(images, labels)
    sampler = DistributedSampler(data, num_replicas=world, rank=rank, shuffle=True, seed=0)
    loader = DataLoader(data, batch_size=args.batch_size, sampler=sampler)
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    rows = []
    for epoch in range(args.epochs):
        sampler.set_epoch(epoch)
        start, total = time.perf_counter(), torch.zeros(2, device=device)
        for x, y in loader:
            x, y = x.to(device), y.to(device)
            opt.zero_grad()
            loss = F.cross_entropy(model(x), y)
            loss.backward()
            opt.step()
            total += torch.stack([loss.detach() * len(y), torch.tensor(float(len(y)), device=device)])
        dist.all_reduce(total)
        rows.append((epoch, f"{(total[0] / total[1]).item():.4f}", f"{time.perf_counter() - start:.2f}"))
        if rank == 0:
            print(f"epoch {epoch}: loss {rows[-1][1]}, {rows[-1][2]} s")
    if rank == 0:
        table = markdown_table(("epoch", "loss", "seconds"), rows)
        body = f"{world} processes, backend {dist.get_backend()}\n\n{table}"
        write_result("train_ddp", "DDP training of GridResNet on digits", body)
    dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main())
