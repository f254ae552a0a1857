"""Time and peak memory of the K=5000 importance-sampled log-likelihood.

For the IWAE paper's one- and two-layer networks (the cost does not depend on the weights),
on N statically binarized MNIST test digits, for several particle-chunk sizes, eagerly and
with the chunks compiled (``log_likelihood(compile=True)``; ``--compiled-chunks`` picks the
chunk sizes timed compiled; the compilation, on a first call with the first 100 digits, is
timed apart and precedes the measured call, so that its memory is not counted): the memory
stays bounded by the chunk, not by K. Peak memory is the rise of the process's peak RSS
(CPU) or of the CUDA allocator's peak over the state before the call.

    DGM_DATA_DIR=../shared/data python benchmarks/loglik_cost.py [--points 10000]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import dgm
from common import current_rss_mib, peak_rss_mib, reset_peak_rss, write_result


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--points", type=int, default=10000)
    parser.add_argument("--particles", type=int, default=5000)
    parser.add_argument("--chunks", type=int, nargs="+", default=[2**18, 2**20, 2**22, 2**24])
    parser.add_argument("--compiled-chunks", type=int, nargs="*", default=[2**20])
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    args = parser.parse_args()
    device = torch.device(
        "cuda"
        if args.device == "auto" and torch.cuda.is_available()
        else ("cpu" if args.device == "auto" else args.device)
    )
    x = dgm.data.binarized_mnist("test")[: args.points].to(device)
    rows, payload = [], []
    for layers in (1, 2):
        torch.manual_seed(0)
        model, guide = dgm.models.vae.one_layer() if layers == 1 else dgm.models.vae.two_layer()
        model.to(device)
        guide.to(device)
        runs = [(c, False) for c in args.chunks] + [(c, True) for c in args.compiled_chunks]
        for chunk, compiled in runs:
            torch._dynamo.reset()
            compile_s = 0.0
            if compiled:  # compile on the first batch, so that time and memory are the run's
                t0 = time.perf_counter()
                dgm.metrics.log_likelihood(
                    model,
                    guide,
                    x[:100],
                    num_particles=args.particles,
                    batch_size=100,
                    max_elements=chunk,
                    compile=True,
                )
                compile_s = time.perf_counter() - t0
            reset_peak_rss()
            before = current_rss_mib()
            if device.type == "cuda":
                torch.cuda.synchronize()
                torch.cuda.reset_peak_memory_stats()
                before = torch.cuda.memory_allocated() / 2**20
            t0 = time.perf_counter()
            ll = dgm.metrics.log_likelihood(
                model,
                guide,
                x,
                num_particles=args.particles,
                batch_size=100,
                max_elements=chunk,
                compile=compiled,
            )
            if device.type == "cuda":
                torch.cuda.synchronize()
            seconds = time.perf_counter() - t0
            peak = (
                torch.cuda.max_memory_allocated() / 2**20
                if device.type == "cuda"
                else peak_rss_mib()
            )
            extra = (peak or 0.0) - (before or 0.0)
            payload.append(
                {
                    "layers": layers,
                    "max_elements": chunk,
                    "compiled": compiled,
                    "compile_and_first_batch_s": compile_s,
                    "seconds": seconds,
                    "peak_extra_mib": extra,
                    "mean_log_likelihood": ll.mean().item(),
                }
            )
            rows.append(
                f"| {layers} | 2^{chunk.bit_length() - 1} | "
                f"{f'compiled ({compile_s:.0f} s to compile, before)' if compiled else 'eager'} "
                f"| {seconds:.1f} | {seconds / len(x) * 1e3:.1f} | {extra:.0f} |"
            )
            print(rows[-1], flush=True)
    table = (
        f"log p(x) with K={args.particles} on {len(x)} binarized-MNIST test digits, batch 100, "
        f"untrained IWAE-paper networks, on {device}.\n\n"
        "| layers | chunk (elements) | mode | seconds | ms per digit | peak memory above baseline, MiB |\n"
        "| --- | --- | --- | --- | --- | --- |\n" + "\n".join(rows)
    )
    path = write_result(
        "loglik_cost", {"points": len(x), "particles": args.particles, "results": payload}, table
    )
    print(table)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
