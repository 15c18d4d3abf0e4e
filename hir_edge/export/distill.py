"""Distil a trained teacher into a small student for the edge (no labels needed).

The student's image and DNA encoders learn to reproduce the teacher's embeddings:

    L = Σ_{m ∈ image, DNA, fused} (1 − cos(z_s, z_t)) + λ_rel · ‖Z_s Z_sᵀ − Z_t Z_tᵀ‖²_F / B²

— an embedding term (each specimen lands where the teacher puts it) and a relational term (the
batch's similarity structure is kept, which is what nearest-neighbour and prompt ranking read).
The student's GatedFusion starts from the teacher's weights and is refitted on the student's own
embeddings through the fused term. A share of the reads is degraded (``noisy_fraction``, with
seeds disjoint from evaluation's) so the student also copies the teacher's behaviour on field
reads; the teacher itself never saw a degraded read in training.

Progress shows on stderr; state is checkpointed so an interrupted run resumes.
"""

from __future__ import annotations

import contextlib
import functools
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset

from hir_edge.data.hdf5 import SpecimenStore
from hir_edge.degrade import degrade_dna_seeded, get_preset
from hir_edge.dna.qc import clean_read
from hir_edge.errors import ConfigError
from hir_edge.progress import progress_bar

NOISE_SEED_OFFSET = 1_000_003  # distillation noise never reuses an evaluation seed


@dataclass
class DistillConfig:
    """Settings of the distillation stage."""

    student: str = "edge-s"
    epochs: int = 12  # 6 kept 0.958 of the teacher's Noisy I+D Top-1, 12 kept 0.985
    batch_size: int = 64
    lr: float = 2e-3
    weight_decay: float = 0.01
    relational_weight: float = 1.0
    noisy_fraction: float = 0.3
    noise_preset: str = "paper"
    seed: int = 0
    checkpoint_every: int = 100


def _vision(model_config) -> dict:
    return dict((model_config.clip.config or {}).get("vision_cfg") or {})


def student_overrides(teacher, student: str) -> dict:
    """How the student preset is fitted to its teacher: the teacher's embedding dimension and,
    when both image towers are the same pretrained timm network, the teacher's resolution and
    preprocessing, so the tower can be handed over unchanged."""
    from hir_edge.models import get_preset_config

    preset = get_preset_config(student)
    overrides: dict = {"embed_dim": teacher.embed_dim}
    if preset.clip.config is not None:
        overrides["clip.config.embed_dim"] = teacher.embed_dim
    t_vision, s_vision = _vision(teacher.config), _vision(preset)
    if (
        t_vision.get("timm_model_name")
        and t_vision.get("timm_model_name") == s_vision.get("timm_model_name")
        and teacher.config.clip.image_weights == preset.clip.image_weights
    ):
        overrides["clip.config.vision_cfg"] = t_vision
        overrides["clip.config.preprocess_cfg"] = teacher.config.clip.config["preprocess_cfg"]
    return overrides


def same_image_network(teacher, student) -> bool:
    """Do both models have one image network (same timm model, config and preprocessing)?"""
    t_vision = _vision(teacher.config)
    return (
        bool(t_vision.get("timm_model_name"))
        and t_vision == _vision(student.config)
        and teacher.preprocess == student.preprocess
        and teacher.config.clip.config.get("embed_dim")
        == student.config.clip.config.get("embed_dim")
    )


class _DistillSet(Dataset):
    """Photos (teacher preprocessing, CLIBD augmentation) and cleaned reads of one split."""

    def __init__(
        self, path: Path, split: str, transform, noisy_fraction: float, preset: str, seed: int
    ):
        self.store = SpecimenStore(path, split)
        self.barcodes = self.store.barcodes()
        self.transform = transform
        self.noisy_fraction = noisy_fraction
        self.noise = get_preset(preset).dna
        self.seed = seed
        self.epoch = 0

    def __len__(self) -> int:
        return len(self.store)

    def __getitem__(self, index: int):
        from hir_edge.images import load_image

        rng_seed = int(np.random.SeedSequence([self.seed, self.epoch, index]).generate_state(1)[0])
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(rng_seed)
            data = self.store.image_bytes(index)
            image = self.transform(load_image(data)) if data is not None else None
            seq = ""
            if self.barcodes[index]:
                try:
                    seq, _ = clean_read(self.barcodes[index], orient=True)
                except ValueError:
                    seq = ""
            if seq and torch.rand(1).item() < self.noisy_fraction:
                seq = degrade_dna_seeded(
                    seq, self.noise, self.seed + NOISE_SEED_OFFSET, self.epoch * len(self) + index
                )
        return image, seq


def _collate(items, size: int):
    images = [i for i, _ in items]
    blank = torch.zeros(3, size, size)
    has_image = torch.tensor([i is not None for i in images])
    stacked = torch.stack([i if i is not None else blank for i in images])
    seqs = [s for _, s in items]
    return stacked, has_image, seqs


def _relational(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return ((a @ a.T - b @ b.T) ** 2).mean()


class Distiller:
    """Train ``student`` to mimic ``teacher`` on the specimens of ``data_path:split``."""

    def __init__(
        self,
        teacher,
        data_path: Path,
        split: str,
        config: DistillConfig,
        work_dir: Path,
        quiet: bool = False,
    ):
        from hir_edge.models import create_model
        from hir_edge.train.augment import TrainTransform
        from hir_edge.train.config import AugmentSection

        self.teacher = teacher.eval()
        for p in self.teacher.parameters():
            p.requires_grad_(False)
        self.config = config
        self.work_dir = Path(work_dir)
        self.quiet = quiet
        torch.manual_seed(config.seed)
        self.student = create_model(
            config.student, overrides=student_overrides(teacher, config.student)
        )
        if self.student.has_text:
            raise ConfigError(
                f"--student {config.student!r} is not a student preset (it has a text tower)"
            )
        self.inherits_image = same_image_network(teacher, self.student)
        if self.inherits_image:
            # The teacher's image tower already is the student's network: hand it over as it
            # is (distilling a network into itself only adds noise) and keep it fixed.
            for part in ("visual", "image_proj"):
                getattr(self.student, part).load_state_dict(getattr(teacher, part).state_dict())
                getattr(self.student, part).requires_grad_(False)
        if teacher.fusion is not None and self.student.fusion is not None:
            # a differently sized head starts fresh
            with contextlib.suppress(RuntimeError):
                self.student.fusion.load_state_dict(teacher.fusion.state_dict())
        self.dataset = _DistillSet(
            data_path,
            split,
            TrainTransform(teacher.preprocess, AugmentSection()),
            config.noisy_fraction,
            config.noise_preset,
            config.seed,
        )
        groups = self.student.param_groups(config.weight_decay)
        self.optimizer = torch.optim.AdamW(groups, lr=config.lr, betas=(0.9, 0.98))
        self.steps_per_epoch = max(1, -(-len(self.dataset) // config.batch_size))
        self.total = max(1, self.steps_per_epoch * config.epochs)
        self.scheduler = torch.optim.lr_scheduler.OneCycleLR(
            self.optimizer, max_lr=config.lr, total_steps=self.total, pct_start=0.1
        )
        self.step = 0

    # ------------------------------------------------------------------ checkpoints
    def _state_path(self) -> Path:
        return self.work_dir / "distill_state.pt"

    def save(self) -> None:
        from hir_edge.io import atomic_path
        from hir_edge.models import save_model

        save_model(self.student, self.work_dir / "student")
        with atomic_path(self._state_path()) as tmp:
            torch.save(
                {
                    "step": self.step,
                    "optimizer": self.optimizer.state_dict(),
                    "scheduler": self.scheduler.state_dict(),
                    "rng": torch.get_rng_state(),
                    "config": asdict(self.config),
                },
                tmp,
            )

    def try_resume(self) -> bool:
        from safetensors.torch import load_file

        if not self._state_path().is_file():
            return False
        state = torch.load(self._state_path(), map_location="cpu", weights_only=True)
        if state["config"] != asdict(self.config):
            raise ConfigError(
                f"{self.work_dir}: an interrupted distillation with other settings is there; "
                "pass --force to start over (it removes that folder)"
            )
        self.student.load_state_dict(
            load_file(str(self.work_dir / "student" / "model.safetensors"))
        )
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        torch.set_rng_state(state["rng"])
        self.step = int(state["step"])
        return True

    # ------------------------------------------------------------------ training
    def _embed_pair(self, model, images, seqs, size: int, z_i=None):
        """Image, DNA and fused embeddings; ``z_i`` given: the image tower is not run."""
        if z_i is None:
            if images.shape[-1] != size:
                images = F.interpolate(
                    images, size=(size, size), mode="bilinear", antialias=True, align_corners=False
                )
            z_i = model.encode_image(images)
        ids, mask = model.tokenize_dna([s or "N" for s in seqs])
        z_d = model.encode_dna(ids, mask)
        z_f = model.fuse(z_i, z_d)[0] if model.fusion is not None else None
        return z_i, z_d, z_f

    def fit(self) -> dict:
        cfg = self.config
        if self.inherits_image and not any(self.dataset.barcodes):
            # A photo-only dataset and an inherited image tower: nothing is left to distil.
            self.student.eval()
            return {"steps": 0, "final_loss": None, "image_tower": "handed over from the teacher"}
        self.work_dir.mkdir(parents=True, exist_ok=True)
        self.try_resume()
        self.student.train()
        bar = progress_bar(self.total - self.step, desc="distil", unit="step", quiet=self.quiet)
        losses = []
        while self.step < self.total:
            epoch = self.step // self.steps_per_epoch
            self.dataset.epoch = epoch
            order = np.random.default_rng([cfg.seed, epoch]).permutation(len(self.dataset))
            start = (self.step % self.steps_per_epoch) * cfg.batch_size
            batches = [
                order[i : i + cfg.batch_size].tolist()
                for i in range(start, self.steps_per_epoch * cfg.batch_size, cfg.batch_size)
            ]
            collate = functools.partial(_collate, size=self.teacher.preprocess.image_size)
            loader = DataLoader(self.dataset, batch_sampler=batches, collate_fn=collate)
            for images, has_image, seqs in loader:
                with torch.no_grad():
                    t_i, t_d, t_f = self._embed_pair(
                        self.teacher, images, seqs, self.teacher.preprocess.image_size
                    )
                s_i, s_d, s_f = self._embed_pair(
                    self.student,
                    images,
                    seqs,
                    self.student.preprocess.image_size,
                    z_i=t_i if self.inherits_image else None,
                )
                has_dna = torch.tensor([bool(s) for s in seqs])
                loss = self._term(s_d[has_dna], t_d[has_dna])
                if not self.inherits_image:
                    loss = loss + self._term(s_i[has_image], t_i[has_image])
                both = has_image & has_dna
                if s_f is not None and t_f is not None and both.any():
                    loss = loss + self._term(s_f[both], t_f[both])
                self.optimizer.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(self.student.parameters(), 1.0)
                self.optimizer.step()
                self.scheduler.step()
                self.step += 1
                losses.append(loss.item())
                bar.update(1)
                bar.set_postfix_str(f"loss={loss.item():.4f}")
                if self.step % cfg.checkpoint_every == 0:
                    self.save()
                if self.step >= self.total:
                    break
        bar.close()
        self.save()
        self.student.eval()
        return {
            "steps": self.step,
            "final_loss": float(np.mean(losses[-20:])) if losses else None,
            "image_tower": "handed over from the teacher" if self.inherits_image else "distilled",
        }

    def _term(self, student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
        if student.shape[0] == 0:
            return student.sum() * 0.0
        embed = (1.0 - (student * teacher).sum(dim=1)).mean()
        return embed + self.config.relational_weight * _relational(student, teacher)


def agreement(teacher_emb: dict, student_emb: dict, banks: list[np.ndarray], ranks) -> dict:
    """Per setting and rank: % of specimens whose top-1 prompt is the same for both models."""
    out = {}
    for key in teacher_emb:
        t, s = teacher_emb[key], student_emb[key]
        out[key] = {
            rank: 100.0 * float(((t @ bank.T).argmax(1) == (s @ bank.T).argmax(1)).mean())
            for rank, bank in zip(ranks, banks)
        }
        out[key]["cosine"] = float((t * s).sum(1).mean())
    return out
