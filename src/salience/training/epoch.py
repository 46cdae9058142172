"""One epoch of a run: fit on the shuffled training split, then score the validation split with the
method's selection metric.

- SGD(momentum, weight decay) + StepLR stepped once per epoch after the training pass (all CVRL code).
- The shuffle and the torch RNG are re-seeded from (seed, epoch) at every epoch start, so a resumed
  run draws exactly the numbers of an uninterrupted one.
- A non-finite loss stops the run with a message naming epoch and batch.
"""

from __future__ import annotations

import logging
import math
import sys
import time
from typing import Any

import torch

from salience.data.loader import BatchStream
from salience.errors import TrainingDiverged
from salience.inference import mean_loss, predict
from salience.scores import val_auroc
from salience.training.setup import RunContext

log = logging.getLogger(__name__)


def fit_epoch(ctx: RunContext, epoch: int, first: bool) -> dict[str, Any]:
    """Train epoch `epoch` (0-based) and step the schedule; returns the history row so far (epoch,
    lr, sample-weighted mean of every loss part). `first`: the first epoch of this process."""
    torch.manual_seed(ctx.spec.seed * 100_003 + epoch)  # per-epoch RNG: resume == uninterrupted
    tcfg = ctx.tcfg
    stream = BatchStream(
        ctx.ds,
        ctx.rows_train,
        tcfg["batch_size"],
        cam_grid=ctx.grid,
        shuffle=True,
        seed=ctx.spec.seed,
        epoch=epoch,
        flip_maps=ctx.resolved["flip_maps"],
        device=ctx.device,
        no_singleton=True,
    )
    if first and stream.merges_singleton:
        log.info(
            "%s: %d training rows in batches of %d would leave a last batch of one sample; it is merged "
            "into the batch before it (BatchNorm needs two samples)",
            ctx.spec.run_id,
            len(ctx.rows_train),
            tcfg["batch_size"],
        )
    ctx.net.model.train()
    sums: dict[str, float] = {}
    n_seen = 0
    progress = _Progress(len(stream), f"{ctx.tag} epoch {epoch + 1}/{ctx.epochs}")
    for b, batch in enumerate(stream):
        parts = _step(ctx, batch, epoch, b)
        bs = len(batch["label"])
        n_seen += bs
        for k, v in parts.items():
            sums[k] = sums.get(k, 0.0) + v * bs
        progress.update(parts["loss"])
    progress.close()
    row = {
        "epoch": epoch + 1,
        "lr": ctx.net.opt.param_groups[0]["lr"],
        **{f"train_{k}": v / n_seen for k, v in sums.items()},
    }
    ctx.net.sched.step()
    return row


def _step(ctx: RunContext, batch: dict, epoch: int, b: int) -> dict[str, float]:
    """One optimiser step on `batch`; returns the batch's total loss ("loss") and loss parts."""
    autocast = ctx.tcfg["bf16"] and ctx.device.type == "cuda"
    with torch.autocast("cuda", dtype=torch.bfloat16, enabled=autocast):
        lo = ctx.method.loss(ctx.net.model, batch, ctx.stage)
    value = float(lo.total.detach())
    if not math.isfinite(value):
        raise TrainingDiverged(
            f"{ctx.spec.run_id} ({ctx.stage}): loss became {value} at epoch {epoch + 1}, batch {b + 1}; "
            f"lower train.lr (now {ctx.tcfg['lr']}) or check the data"
        )
    opt = ctx.net.opt
    opt.zero_grad(set_to_none=True)
    lo.total.backward()
    opt.step()
    return {k: float(v.detach()) for k, v in {"loss": lo.total, **lo.parts}.items()}


def validate(ctx: RunContext, epoch: int) -> dict[str, float]:
    """The selection metric on the val split: {"val_loss"} or {"val_auroc", "val_constant_scores"}."""
    # model selection reads the maps training reads: 1 − h in a flipped-map (sanity) run, so a
    # map-based validation loss (MENTOR stage 1) or a map-reading model is judged on its target
    val_stream = BatchStream(
        ctx.ds,
        ctx.rows_val,
        ctx.tcfg["eval_batch_size"],
        cam_grid=ctx.grid,
        flip_maps=ctx.resolved["flip_maps"],
        device=ctx.device,
    )
    if ctx.sel_metric == "val_loss":
        return {"val_loss": mean_loss(ctx.method, ctx.net.model, val_stream, ctx.stage)}
    labels, logits = predict(ctx.method, ctx.net.model, val_stream)
    value, const = val_auroc(labels, logits, f"{ctx.spec.run_id} val split")
    if const:
        log.warning(
            "%s (%s): epoch %d scores every validation image the same; AUROC 0.5 by ties",
            ctx.spec.run_id,
            ctx.stage,
            epoch + 1,
        )
    return {"val_auroc": value, "val_constant_scores": int(const)}


def print_epoch(ctx: RunContext, row: dict[str, Any]) -> None:
    """The epoch's one console line (stderr): every value of its history row."""
    print(
        f"{ctx.tag} epoch {row['epoch']}: "
        + " ".join(f"{k}={v:.4f}" for k, v in row.items() if k != "epoch"),
        file=sys.stderr,
        flush=True,
    )


class _Progress:
    """tqdm on a terminal; plain periodic lines in log files (Snakemake redirects to logs/)."""

    def __init__(self, total: int, desc: str) -> None:
        self.tty = sys.stderr.isatty()
        self.total, self.desc, self.n, self.t0 = total, desc, 0, time.time()
        self.bar = None
        if self.tty:
            from tqdm import tqdm

            self.bar = tqdm(total=total, desc=desc, leave=False)
        self.every = max(1, total // 4)

    def update(self, loss: float) -> None:
        self.n += 1
        if self.bar is not None:
            self.bar.update(1)
            self.bar.set_postfix(loss=f"{loss:.4f}")
        elif self.n % self.every == 0 or self.n == self.total:
            print(
                f"{self.desc} batch {self.n}/{self.total} loss {loss:.4f} ({time.time() - self.t0:.1f}s)",
                file=sys.stderr,
                flush=True,
            )

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
