"""The training loop: phases -> epochs -> steps, with events for methods and callbacks.

One phase (task) reads top to bottom in :meth:`Trainer.run_phase`:

    grow the head; method.before_task; emit before_task
    new SGD optimizer + lr schedule (step: lr 0.1, /10 at 50 % and 75 % of the epochs; or patience)
    for each epoch (until the schedule says stop), for each batch of memory + new data:
        out = model(x); losses = method.losses(batch, out); loss = sum(losses)
        emit before_backward; loss.backward()
        method.after_backward; emit after_backward      (gradient rewrites, gradient probes)
        optimizer.step(); emit after_step                (weight decay and momentum act after rewrites)
      schedule.end_epoch(validation loss, when the schedule watches one)
    method.after_task; each of the method's extra stages (method.stages: BiC's bias layer, EEIL's balanced
      fine-tuning, ...) through the same events, on its own SGD; memory update (herding); emit after_task
    evaluate every seen class; emit after_eval; freeze a teacher copy

Callbacks are objects with any of the event methods below; they never touch the method.

On several ranks (torchrun; :mod:`gradlab.training.distributed`) the same loop runs in every process: each takes
its slice of the global batch, the gradients are summed over ranks after ``backward``, evaluation is split.
"""
from __future__ import annotations

import copy

import numpy as np
import torch
from tqdm.auto import tqdm

from gradlab.errors import ConfigError
from gradlab.training.context import Context
from gradlab.training.distributed import shard_indices
from gradlab.training.schedules import build_optimizer, build_schedule
from gradlab.training.stages import Stage, StageRun

EVENTS = ("before_run", "before_task", "before_epoch", "before_backward", "after_backward", "after_step",
          "after_epoch", "after_task", "after_eval", "after_run")


class Callback:
    """Base class for instrumentation and logging; override the events you need (all get the context)."""

    def before_run(self, ctx: Context) -> None: ...
    def before_task(self, ctx: Context) -> None: ...
    def before_epoch(self, ctx: Context) -> None: ...
    def before_backward(self, ctx: Context) -> None: ...
    def after_backward(self, ctx: Context) -> None: ...
    def after_step(self, ctx: Context) -> None: ...
    def after_epoch(self, ctx: Context) -> None: ...
    def after_task(self, ctx: Context) -> None: ...
    def after_eval(self, ctx: Context) -> None: ...
    def after_run(self, ctx: Context) -> None: ...


class Trainer:
    def __init__(self, ctx: Context, method, callbacks=()):
        self.ctx, self.method, self.callbacks = ctx, method, list(callbacks)
        cfg = ctx.cfg
        self.generator = torch.Generator().manual_seed(cfg.seed)   # data order and augmentation
        self.autocast = ctx.autocast()
        self.epoch_losses: list[float] = []
        self.stage_run: StageRun | None = None        # the extra stage being trained, if any
        self.resume_stage: dict | None = None         # a checkpoint's stage state to go on from (resume)

    def emit(self, event: str) -> None:
        for callback in self.callbacks:
            getattr(callback, event, lambda ctx: None)(self.ctx)

    # ------------------------------------------------------------------ the run
    def fit(self, resume=None) -> Context:
        """Every phase in order. ``resume(trainer) -> (first phase, within)`` (gradlab.runs.runner) restores a
        checkpoint first; ``within(trainer) -> next epoch`` restores the inside of that first phase."""
        ctx = self.ctx
        ctx.correct = np.full((ctx.scenario.num_tasks, ctx.scenario.num_classes), np.nan)
        self.method.ctx = ctx
        self.emit("before_run")
        first, within = resume(self) if resume is not None else (0, None)
        phases = tqdm(ctx.scenario.tasks[first:], desc="phases", disable=not ctx.cfg.progress,
                      initial=first, total=ctx.scenario.num_tasks)
        for task in phases:
            self.run_phase(task, within if task.index == first else None)
            acc = np.nansum(ctx.correct[task.index]) / ctx.scenario.test_counts[: ctx.num_seen].sum()
            phases.set_postfix(acc=f"{acc:.3f}")
        self.emit("after_run")
        return ctx

    def run_phase(self, task, within=None) -> None:
        self.begin_phase(task)
        cfg = self.ctx.cfg
        start = within(self) if within is not None else 0
        if start > 0 and self.schedule.finished:         # resumed after the patience schedule had stopped
            start = cfg.epochs
        epochs = tqdm(range(start, cfg.epochs), desc=f"phase {task.index}", leave=False, disable=not cfg.progress,
                      initial=start, total=cfg.epochs)
        for epoch in epochs:
            epochs.set_postfix(loss=f"{self.train_epoch(epoch):.3f}")
            if self.schedule.finished:                   # the patience schedule ran out of lr
                break
        self.end_phase(task)

    def begin_phase(self, task) -> None:
        """Grow the head, gather memory + new data, let the method prepare, make a fresh optimizer."""
        ctx, cfg = self.ctx, self.ctx.cfg
        ctx.phase, ctx.task = task.index, task
        ctx.phase_log = {}
        ctx.model.head.grow(len(task.classes))
        ctx.model.to(ctx.device)
        ctx.train_indices = np.concatenate([ctx.memory.indices(), task.train_indices]).astype(np.int64)
        self.method.before_task(ctx)
        ctx.ranks.broadcast_module(ctx.model)          # several ranks: rank 0's grown, prepared model everywhere
        self.emit("before_task")
        ctx.optimizer = build_optimizer(ctx.model, cfg)
        self.schedule = build_schedule(ctx.optimizer, cfg)
        ctx.step = -1

    def train_epoch(self, epoch: int) -> float:
        """One pass over memory + new data; returns the mean loss (one host sync per epoch)."""
        ctx, method = self.ctx, self.method
        ctx.epoch = epoch
        ctx.model.train()
        self.emit("before_epoch")
        loss_sum, steps = torch.zeros((), device=ctx.device), 0
        for batch in ctx.train_data.train_batches(ctx.train_indices, ctx.cfg.batch_size, self.generator):
            ctx.step += 1
            ctx.batch = batch = ctx.ranks.take(batch)      # several ranks: this rank's slice of the global batch
            with self.autocast:
                ctx.out = ctx.model(batch.x)
                ctx.losses = method.losses(batch, ctx.out)
            ctx.loss = sum(ctx.losses.values())
            self.emit("before_backward")
            ctx.optimizer.zero_grad(set_to_none=True)
            ctx.loss.backward()
            if ctx.ranks.active:
                self.sync_step(ctx.model.parameters())
            method.after_backward(ctx)
            self.emit("after_backward")
            ctx.optimizer.step()
            self.emit("after_step")
            loss_sum += ctx.loss.detach().float()
            steps += 1
        ctx.ranks.broadcast_module(ctx.model, buffers_only=True)   # several ranks: one set of BatchNorm statistics
        self.schedule.end_epoch(self.validation_loss() if self.schedule.needs_validation else None)
        epoch_loss = float(loss_sum) / max(steps, 1)
        self.epoch_losses.append(epoch_loss)
        self.emit("after_epoch")
        return epoch_loss

    def end_phase(self, task) -> None:
        """Extra stages, memory update, evaluation, then freeze the teacher for the next phase."""
        ctx = self.ctx
        ctx.batch = ctx.out = ctx.loss = None
        ctx.losses = {}
        resume, self.resume_stage = self.resume_stage, None
        if resume is None:              # (a resumed stage: the main training's end is in its checkpoint)
            schedule_log = self.schedule.log()
            if schedule_log:
                ctx.phase_log["schedule"] = schedule_log
            self.method.after_task(ctx)
        self.run_stages(resume)
        self.update_memory(task)
        self.emit("after_task")
        ctx.correct[task.index, : ctx.num_seen] = self.evaluate()
        self.emit("after_eval")
        ctx.teacher = freeze(ctx.model)

    # ------------------------------------------------------------------ extra stages
    def run_stages(self, resume: dict | None = None) -> None:
        """The method's extra stages of this phase (``method.stages``), in order; ``resume`` (a checkpoint's stage
        state) skips the stages before it, whose effects the checkpoint holds."""
        offset = self.ctx.cfg.epochs
        for index, stage in enumerate(self.method.stages(self.ctx)):
            if resume is None or index >= resume["index"]:
                here = resume if resume is not None and index == resume["index"] else None
                self.run_stage(stage, index, offset, here)
            offset += stage.epochs

    def run_stage(self, stage: Stage, index: int = 0, offset: int | None = None, resume: dict | None = None) -> list:
        """Train one extra stage (see :mod:`gradlab.training.stages`); returns the mean loss of every epoch."""
        ctx = self.ctx
        run = StageRun(ctx, stage, index=index, offset=ctx.cfg.epochs if offset is None else offset)
        if resume is not None:
            run.load(resume)
        run.open()
        ctx.stage, self.stage_run = stage.name, run
        try:
            epochs = tqdm(range(run.start, stage.epochs), desc=f"phase {ctx.phase} {stage.name}", leave=False,
                          disable=not ctx.cfg.progress, initial=run.start, total=stage.epochs)
            for epoch in epochs:
                epochs.set_postfix(loss=f"{self.train_stage_epoch(run, epoch):.3f}")
        finally:
            run.close()
            ctx.stage, self.stage_run = None, None
        if stage.commit is not None:
            stage.commit()
        if stage.finish is not None:
            stage.finish(list(run.losses))
        return run.losses

    def train_stage_epoch(self, run: StageRun, epoch: int) -> float:
        """One pass of a stage, with the main loop's events (``ctx.epoch`` counts on after the main epochs)."""
        ctx, stage = self.ctx, run.stage
        ctx.epoch = run.offset + epoch
        self.emit("before_epoch")
        loss_sum, steps = torch.zeros((), device=ctx.device), 0
        for batch in run.batches(epoch):
            ctx.step += 1
            ctx.batch = batch = ctx.ranks.take(batch)
            with self.autocast:
                ctx.out = run.forward(batch.x)
                ctx.loss = stage.loss(batch, ctx.out)
            ctx.losses = {stage.name: ctx.loss}
            self.emit("before_backward")
            run.backward(ctx.loss)
            if ctx.ranks.active:
                self.sync_step(run.params)
            self.emit("after_backward")
            run.optimizer.step()
            self.emit("after_step")
            loss_sum += ctx.loss.detach().float()
            steps += 1
        ctx.ranks.broadcast_module(ctx.model, buffers_only=True)
        run.schedule.step()
        run.losses.append(float(loss_sum) / max(steps, 1))
        self.emit("after_epoch")
        return run.losses[-1]

    # ------------------------------------------------------------------ helpers
    def sync_step(self, params) -> None:
        """Several ranks: the step's gradients and loss values summed over ranks, weighted by each rank's share of
        the global batch (:mod:`gradlab.training.distributed`); afterwards ``ctx.loss`` / ``ctx.losses`` hold the
        global batch's values (detached: the graph was used by ``backward``)."""
        ctx = self.ctx
        names = list(ctx.losses)
        values = torch.stack([ctx.loss.detach().float().reshape(())]
                             + [ctx.losses[n].detach().float().reshape(()) for n in names])
        values = ctx.ranks.sync_gradients(list(params), values)
        ctx.loss, ctx.losses = values[0], dict(zip(names, values[1:]))

    @torch.no_grad()
    def features(self, indices: np.ndarray) -> torch.Tensor:
        """Penultimate features of training images, eval mode, no augmentation (for herding)."""
        self.ctx.model.eval()
        chunks = [self.ctx.model(b.x).features.float() for b in self.ctx.train_data.eval_batches(indices)]
        return torch.cat(chunks) if chunks else torch.empty(0)

    def update_memory(self, task) -> None:
        candidates = self.method.memory_candidates(task)
        labels = self.ctx.scenario.train.labels[candidates]
        new_classes = {int(c): candidates[labels == c] for c in task.classes}
        ranks = self.ctx.ranks
        if ranks.main:                 # several ranks: rank 0 selects, every rank gets its choice
            self.ctx.memory.update(new_classes, features_fn=self.features, phase=task.index)
        if ranks.active:
            self.ctx.memory.load_state_dict(ranks.broadcast_object(self.ctx.memory.state_dict()))

    @torch.no_grad()
    def validation_loss(self) -> float:
        """The method's training loss on this task's validation hold-out (eval mode, no augmentation),
        averaged over images: what FACIL's patience scheme watches."""
        ctx = self.ctx
        ctx.model.eval()
        indices = np.flatnonzero(np.isin(ctx.scenario.val.labels, ctx.task.classes))   # host labels: no sync
        total = torch.zeros(2, device=ctx.device)          # loss sum, images (summed over ranks)
        for batch in ctx.val_data.eval_batches(shard_indices(ctx.ranks, indices)):
            with self.autocast:
                losses = self.method.losses(batch, ctx.model(batch.x))
            total[0] += sum(losses.values()).detach().float() * len(batch.y)
            total[1] += len(batch.y)
        loss_sum, count = ctx.ranks.sum_(total).tolist()
        return loss_sum / max(count, 1)

    @torch.no_grad()
    def evaluate(self) -> np.ndarray:
        """Correct test predictions per seen class (argmax over all seen classes, task-agnostic)."""
        ctx = self.ctx
        ctx.model.eval()
        seen = ctx.num_seen
        indices = np.flatnonzero(ctx.scenario.test.labels < seen)
        correct = torch.zeros(seen, device=ctx.device)
        for batch in ctx.test_data.eval_batches(shard_indices(ctx.ranks, indices)):   # each rank its part
            with self.autocast:
                logits = self.method.predict(batch.x)
            hits = (logits.argmax(1) == batch.y).float()
            correct.index_add_(0, batch.y, hits)
        return ctx.ranks.sum_(correct).cpu().numpy()


def freeze(model: torch.nn.Module) -> torch.nn.Module:
    """A frozen copy in eval mode: the teacher for the next phase."""
    teacher = copy.deepcopy(model).eval()
    for p in teacher.parameters():
        p.requires_grad_(False)
    return teacher


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device 'cuda' was asked for but torch sees no CUDA GPU; allowed here: auto, cpu")
    return torch.device(name)

