"""One trainer for the CLIBD baseline, CLIBD-HiR (Algo 1) and CLIBD-HiR-Fuse (Algo 2).

The recipe's ``loss.variant`` picks the terms of L = L_con + λ_HiR·L_HiR + λ_F·L_F;
``train.mode: fusion-only`` trains GatedFusion post hoc on frozen encoders. The same loop
runs on one CPU process, one GPU (bf16 autocast) or N processes under ``torchrun`` (DDP with
all-gathered losses, so N processes see exactly the global batch one process would).
"""

from __future__ import annotations

import json
import math
import sys
import time
from contextlib import nullcontext
from pathlib import Path

import torch

from hir_edge.data.hdf5 import SpecimenStore
from hir_edge.data.sampler import TaxonomyBatchSampler
from hir_edge.data.torch_dataset import SpecimenDataset, collate_specimens
from hir_edge.errors import ConfigError
from hir_edge.losses import HirObjective, LossWeights, term_gradient_norms
from hir_edge.progress import progress_bar
from hir_edge.taxonomy import Taxonomy
from hir_edge.train import checkpoint as ckpt
from hir_edge.train import run_folder
from hir_edge.train.augment import ReadAugment, SeededDataset, TrainTransform
from hir_edge.train.config import TrainConfig, save_config
from hir_edge.train.data import dataset_path
from hir_edge.train.distributed import DistEnv, compute_precision, setup, teardown
from hir_edge.train.optim import optimizer_and_schedule
from hir_edge.train.run_folder import RUN_MARKER, TrainSummary, peak_rss_mb, prepare_run_dir
from hir_edge.train.validation import validate


class Trainer:
    """Train one recipe into a run folder.

    Args:
        config: the resolved recipe.
        run_dir: output folder (see :mod:`hir_edge.train.checkpoint` for its layout).
        resume: continue from the newest checkpoint in ``run_dir``.
        force: start over in an existing run folder.
        quiet: no progress bar, no summary line.
    """

    def __init__(
        self,
        config: TrainConfig,
        run_dir: str | Path,
        *,
        resume: bool = False,
        force: bool = False,
        quiet: bool = False,
    ):
        self.config = config
        self.run_dir = Path(run_dir)
        self.resume = resume
        self.force = force
        self.quiet = quiet
        self.env: DistEnv | None = None
        self._tb = None

    # ------------------------------------------------------------------ set-up
    def _say(self, message: str) -> None:
        if not self.quiet and (self.env is None or self.env.is_main):
            print(message, file=sys.stderr)

    def _build(self) -> None:
        from hir_edge.models import create_model, load_model

        cfg = self.config
        env = self.env
        if env.is_main:
            prepare_run_dir(self.run_dir, self.resume, self.force)
        env.barrier()
        self.data_path = dataset_path(cfg, env, self.quiet)
        train_store = SpecimenStore(self.data_path, cfg.data.train_split)
        self.taxonomy = Taxonomy.from_lineages(train_store.lineages())
        train_store.close()

        torch.manual_seed(cfg.train.seed)  # identical initial weights on every rank
        if cfg.train.init_from:
            model = load_model(cfg.train.init_from)
            if cfg.model.overrides:
                raise ConfigError(
                    "model.overrides cannot change a model loaded with train.init_from"
                )
        else:
            model = create_model(cfg.model.preset, overrides=cfg.model.dotted_overrides())
        if cfg.train.mode == "fusion-only":
            if model.fusion is None:
                raise ConfigError(f"{cfg.train.init_from}: the model has no fusion head to train")
            for name, param in model.named_parameters():
                param.requires_grad_(name.startswith("fusion."))
        if env.distributed and env.device.type == "cuda":
            # BatchNorm statistics over the global batch, as one process would compute them.
            model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
        model.to(env.device)
        self.model = model
        self.fuse = model.fusion is not None and cfg.fusion_weight > 0
        self.objective = HirObjective(
            LossWeights(
                hir=cfg.hir_weight,
                fusion=cfg.fusion_weight if self.fuse else 0.0,
                hir_temperature=cfg.loss.hir_temperature,
                fusion_mode=cfg.loss.fusion_mode,
                prompt=cfg.loss.prompt_weight if model.has_text else 0.0,
                prompt_smoothing=cfg.loss.prompt_label_smoothing,
                prompt_smoothing_scope=cfg.loss.prompt_label_smoothing_scope,
            )
        )
        self.prompt_tokens = self.prompt_sizes = self.prompt_candidates = None
        if self.objective.weights.prompt > 0:
            # Every taxon's prompt, tokenised once; embedded at each step (L_P).
            levels = range(self.taxonomy.num_ranks)
            prompts = [p for lv in levels for p in self.taxonomy.prompts(lv)]
            self.prompt_tokens = model.tokenize_text(prompts).to(env.device)
            self.prompt_sizes = [self.taxonomy.size(lv) for lv in levels]
            self.prompt_candidates = [
                torch.from_numpy(self.taxonomy.label_mask(lv)).to(env.device) for lv in levels
            ]

        read_augment = ReadAugment(cfg.data.read_augment)
        base = SpecimenDataset(
            self.data_path,
            cfg.data.train_split,
            self.taxonomy,
            image_transform=TrainTransform(model.preprocess, cfg.data.augment),
            dna_tokenizer=model.dna_tokenizer,
            read_transform=read_augment if read_augment.enabled else None,
        )
        self.dataset = SeededDataset(
            base, cfg.train.seed, self.taxonomy, text_coarsen_prob=cfg.data.text_coarsen_prob
        )
        micro_global = cfg.train.batch_size * env.world_size
        self.sampler = TaxonomyBatchSampler(
            base.labels(),
            micro_global,
            per_group=cfg.train.sampler.per_group,
            grouped_fraction=cfg.train.sampler.grouped_fraction,
            seed=cfg.train.seed,
            num_replicas=env.world_size,
            rank=env.rank,
        )
        self.steps_per_epoch = len(self.sampler) // cfg.train.grad_accum
        if self.steps_per_epoch < 1:
            raise ConfigError(
                f"{len(base)} training specimens make no full step of "
                f"{micro_global * cfg.train.grad_accum}"
            )
        self.total_steps = cfg.train.epochs * self.steps_per_epoch
        if cfg.train.max_steps:
            self.total_steps = min(self.total_steps, cfg.train.max_steps)
        self.global_batch = micro_global * cfg.train.grad_accum
        self.max_lr = cfg.train.lr * self.global_batch / cfg.train.lr_reference_batch
        self.optimizer, self.scheduler = optimizer_and_schedule(
            model, cfg.train, self.max_lr, self.total_steps
        )
        self.state = ckpt.TrainState()
        if self.resume:
            self._restore()
        if env.distributed:
            self.ddp = torch.nn.parallel.DistributedDataParallel(
                model, device_ids=[env.device.index] if env.device.type == "cuda" else None
            )
        else:
            self.ddp = model
        if env.is_main:
            save_config(cfg, self.run_dir / RUN_MARKER)
            self.taxonomy.save(self.run_dir / "taxonomy.json")

    def _restore(self) -> None:
        folder = ckpt.latest_checkpoint(self.run_dir)
        if folder is None:
            raise ConfigError(
                f"{self.run_dir}: --resume given but there is no checkpoint to resume from"
            )
        from safetensors.torch import load_file

        saved_tax = Taxonomy.load(folder / "taxonomy.json")
        if saved_tax != self.taxonomy:
            raise ConfigError(
                f"{folder}: the training data changed since this checkpoint (taxonomy differs)"
            )
        self.model.load_state_dict(load_file(str(folder / "model.safetensors")))
        payload = ckpt.load_train_state(folder)
        self.optimizer.load_state_dict(payload["optimizer"])
        self.scheduler.load_state_dict(payload["scheduler"])
        self.sampler.load_state_dict(payload["sampler"])
        self.state = ckpt.TrainState(**payload["state"])
        ckpt.restore_rng(payload)
        if self.env.is_main:
            run_folder.truncate_metrics(self.run_dir / "metrics.jsonl", self.state.step)
        self._say(
            f"resuming {self.run_dir} from {folder.name} "
            f"(epoch {self.state.epoch + 1}, step {self.state.step})"
        )

    # ------------------------------------------------------------------ one step
    def _autocast(self):
        device = self.env.device
        if self.precision == "bf16 autocast":
            return torch.autocast(device.type, dtype=torch.bfloat16)
        return nullcontext()

    def _loss(self, batch: dict) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        """The loss terms of one batch, and the embeddings they were computed from."""
        dev = self.env.device
        texts = batch["text"]
        tokens = self.model.tokenize_text(texts).to(dev) if self.model.has_text else None
        with self._autocast():
            out = self.ddp(
                batch["image"].to(dev, non_blocking=True),
                batch["dna_ids"].to(dev, non_blocking=True),
                batch["dna_mask"].to(dev, non_blocking=True),
                tokens,
                fuse=self.fuse,
                prompt_tokens=self.prompt_tokens,
            )
        emb = {k: v.float() for k, v in out.items()}
        labels = batch["labels"].to(dev)
        bank = None
        if "prompts" in emb:
            bank = list(torch.split(emb["prompts"], self.prompt_sizes))
        parts = self.objective(
            emb["scale"],
            emb["image"],
            emb["dna"],
            emb.get("text"),
            labels,
            has_image=batch["has_image"].to(dev),
            has_dna=batch["has_dna"].to(dev),
            has_text=torch.tensor([bool(t) for t in texts], device=dev),
            fused=emb.get("fused"),
            text_levels=batch["text_level"].to(dev),
            mask_known_positives=self.config.loss.mask_known_positives,
            prompt_bank=bank,
            prompt_candidates=self.prompt_candidates if bank is not None else None,
        )
        return parts, emb

    # ------------------------------------------------------------------ validation
    def validate(self) -> dict:
        """Paper protocol on (a subset of) the clean validation split; see
        :func:`hir_edge.train.validation.validate`."""
        return validate(
            self.model,
            self.data_path,
            self.config.data.val_split,
            self.taxonomy,
            self.config.data.max_val_specimens,
            self.env.device,
        )

    # ------------------------------------------------------------------ logging
    def _log(self, record: dict) -> None:
        if not self.env.is_main:
            return
        with (self.run_dir / "metrics.jsonl").open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(record) + "\n")
        if self._tb is not None:
            for key, value in record.items():
                if isinstance(value, (int, float)) and key not in ("step", "epoch"):
                    self._tb.add_scalar(key, value, record.get("step", 0))

    def _open_tensorboard(self) -> None:
        if not self.env.is_main:
            return
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:  # tensorboard is optional
            return
        self._tb = SummaryWriter(str(self.run_dir / "tensorboard"))

    # ------------------------------------------------------------------ the loop
    def fit(self, stop_after_epochs: int | None = None) -> TrainSummary:
        """Train to the end of the schedule (or for ``stop_after_epochs`` more epochs).

        ``stop_after_epochs`` ends the process early but keeps the schedule of the whole
        recipe, as a time-limited cluster job does; ``--resume`` continues it.
        """
        self.env = setup(self.config.train.device)
        self.precision = compute_precision(self.config.train.precision, self.env.device)
        try:
            return self._fit(stop_after_epochs)
        finally:
            if self._tb is not None:
                self._tb.close()
            teardown(self.env)

    def _fit(self, stop_after_epochs: int | None) -> TrainSummary:
        self._build()
        self._mark = time.perf_counter()  # training time runs from here (saved at checkpoints)
        self._open_tensorboard()
        cfg, state, env = self.config, self.state, self.env
        self._say(
            f"training {cfg.name} ({cfg.loss.variant}, mode {cfg.train.mode}) on {env.device} × "
            f"{env.world_size}: {len(self.dataset)} specimens, global batch {self.global_batch}, "
            f"{self.steps_per_epoch} steps/epoch, {self.total_steps} steps, "
            f"peak LR {self.max_lr:.2e}, {self.precision}"
        )
        if cfg.train.head_warmup_steps and state.step == 0:
            from hir_edge.train.head_warmup import warm_up

            warm_up(self)
        epochs_run = 0
        while state.step < self.total_steps and state.epoch < cfg.train.epochs:
            if stop_after_epochs is not None and epochs_run >= stop_after_epochs:
                break
            mean_loss = self._epoch()
            epochs_run += 1
            if state.epoch == 0:
                state.first_epoch_loss = mean_loss
            state.last_epoch_loss = mean_loss
            state.epoch += 1
            state.epoch_step = 0
            self.sampler.set_epoch(state.epoch)
            self._end_of_epoch()
        summary = TrainSummary(  # the whole run, resumed parts included
            run_dir=self.run_dir,
            steps=state.step,
            epochs_done=state.epoch,
            samples=state.samples,
            seconds=state.seconds,
            samples_per_second=state.samples / state.seconds if state.seconds > 0 else 0.0,
            first_epoch_loss=state.first_epoch_loss,
            last_epoch_loss=state.last_epoch_loss,
            best_metric=state.best_metric,
            peak_rss_mb=peak_rss_mb(),
            device=str(env.device),
            world_size=env.world_size,
            peak_gpu_mb=torch.cuda.max_memory_allocated(env.device) / 2**20
            if env.device.type == "cuda"
            else None,
            precision=self.precision,
        )
        if env.is_main:
            from hir_edge.io import atomic_write_text

            atomic_write_text(
                self.run_dir / "summary.json", json.dumps(summary.to_dict(), indent=1)
            )
        self._say(summary.line())
        return summary

    def _epoch(self) -> tuple[float, int]:
        cfg, state, env = self.config, self.state, self.env
        self.ddp.train()
        self.sampler.set_epoch(state.epoch)
        self.dataset.set_epoch(state.epoch)
        loader = torch.utils.data.DataLoader(
            self.dataset,
            batch_sampler=self.sampler,
            num_workers=cfg.data.num_workers,
            collate_fn=collate_specimens,
            pin_memory=env.device.type == "cuda",
        )
        remaining = min(self.steps_per_epoch - state.epoch_step, self.total_steps - state.step)
        bar = progress_bar(
            remaining,
            desc=f"epoch {state.epoch + 1}/{cfg.train.epochs}",
            unit="step",
            quiet=self.quiet or not env.is_main,
        )
        accum = cfg.train.grad_accum
        if state.epoch_step == 0:  # a fresh epoch (a resumed one keeps its sums so far)
            state.epoch_loss_sum, state.epoch_loss_steps = 0.0, 0
        micro = 0
        tick = time.perf_counter()
        window_samples = 0
        for batch in loader:
            if state.epoch_step >= self.steps_per_epoch or state.step >= self.total_steps:
                break
            sync = (micro + 1) % accum == 0
            ctx = self.ddp.no_sync() if env.distributed and not sync else nullcontext()
            logging = sync and (
                (state.step + 1) % cfg.train.log_every_steps == 0
                or state.epoch_step + 1 == self.steps_per_epoch
            )
            with ctx:
                parts, emb = self._loss(batch)
                grad_norms = term_gradient_norms(parts, emb) if logging else {}
                (parts["loss"] / accum).backward()
            del emb
            micro += 1
            batch_samples = len(batch["text"]) * env.world_size
            state.samples += batch_samples  # in the state, so a mid-epoch checkpoint has it
            window_samples += batch_samples
            if not sync:
                continue
            if cfg.train.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(
                    [p for p in self.model.parameters() if p.requires_grad], cfg.train.grad_clip
                )
            self.optimizer.step()
            self.scheduler.step()
            self.optimizer.zero_grad(set_to_none=True)
            state.step += 1
            state.epoch_step += 1
            state.epoch_loss_sum += float(parts["loss"].detach())
            state.epoch_loss_steps += 1
            bar.update(1)
            if logging:
                now = time.perf_counter()
                rate = window_samples / max(now - tick, 1e-9)
                tick, window_samples = now, 0
                record = {
                    "step": state.step,
                    "epoch": state.epoch + 1,
                    "lr": self.scheduler.get_last_lr()[0],
                    "scale": self.model.scale().item(),
                    "samples_per_s": rate,
                    **{k: float(v.detach()) for k, v in parts.items()},
                    **grad_norms,
                }
                self._log(record)
                bar.set_postfix_str(
                    " ".join(f"{k}={v.item():.3f}" for k, v in parts.items() if k != "con")
                    + f" {rate:.0f}/s"
                )
            every = cfg.train.checkpoint_every_steps
            if every and state.step % every == 0 and state.epoch_step < self.steps_per_epoch:
                self._save_checkpoint()
        bar.close()
        steps = state.epoch_loss_steps
        return state.epoch_loss_sum / steps if steps else float("nan")

    def _save_checkpoint(self) -> None:
        now = time.perf_counter()
        self.state.seconds += now - self._mark  # training time so far, saved with the state
        self._mark = now
        if self.env.is_main:
            sampler_state = {
                "epoch": self.state.epoch,
                "batches_yielded": self.state.epoch_step * self.config.train.grad_accum,
                "seed": self.sampler.seed,
            }
            ckpt.save_checkpoint(
                self.run_dir,
                self.model,
                self.taxonomy,
                self.state,
                self.optimizer,
                self.scheduler,
                sampler_state,
                keep=self.config.train.keep_checkpoints,
            )
        self.env.barrier()

    def _end_of_epoch(self) -> None:
        cfg, state = self.config, self.state
        last = state.epoch == cfg.train.epochs or state.step >= self.total_steps
        due = last or state.epoch % cfg.train.eval_every_epochs == 0
        if due and self.env.is_main:
            val = self.validate()
            self._log(
                {"step": state.step, "epoch": state.epoch, "val": val, "val_metric": val["metric"]}
            )
            improved = not math.isnan(val["metric"]) and val["metric"] > state.best_metric
            self._say(
                f"epoch {state.epoch}: val metric {val['metric']:.2f} "
                "(mean Global Top-1 of IT, DT, I+DT)" + (" — best so far" if improved else "")
            )
            if improved:
                state.best_metric = val["metric"]
                state.best_step = state.step
                from hir_edge.io import atomic_dir

                with atomic_dir(self.run_dir / "best", force=True) as tmp:
                    ckpt.save_model_folder(
                        self.model,
                        self.taxonomy,
                        tmp,
                        extra={
                            "step": state.step,
                            "epoch": state.epoch,
                            "val": val,
                            "recipe": cfg.name,
                            "variant": cfg.loss.variant,
                        },
                    )
        if self.env.distributed:
            _broadcast_state(self.state, self.env)
        self._save_checkpoint()


def _broadcast_state(state: ckpt.TrainState, env: DistEnv) -> None:
    """Rank 0's counters (its best metric comes from validation) to every rank, in place:
    the training loop holds a reference to ``state``, so it must not be replaced."""
    from hir_edge.train.distributed import broadcast_object

    state.__dict__.update(broadcast_object(dict(state.__dict__), env))
