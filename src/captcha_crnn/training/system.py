"""The Lightning "system": CTC loss, optimiser, schedule and validation metrics around a plain CRNN."""

from __future__ import annotations

import copy
import math
from typing import Any

import lightning as L
import torch
from torch import nn
from torchmetrics import MeanMetric, SumMetric
from torchmetrics.text import CharErrorRate

from captcha_crnn.data.tokenizer import CTCTokenizer
from captcha_crnn.model.crnn import CRNN, CRNNConfig
from captcha_crnn.training.augment import Augmentation
from captcha_crnn.training.callbacks import improved

GRAD_CLIP = 5.0  # each step's gradient norm is clipped to this: one huge CTC gradient must not undo a run

PLATEAU_CER = 0.5
EMA_POWER = 0.75  # EMA decay after n steps: 1 - (1 + n) ** -0.75, i.e. averaging over the last ~n**0.75 steps
EMA_MAX_DECAY = 0.9995
# The fixed schedule validates (and writes last.ckpt) at most this many times (every ceil(epochs / 20)
# epochs), always after its last epoch and when stopped early (--max-time). Few labels make epochs of 2-3
# steps, and validating each one took a fifth of a 200-label run.
FIXED_VALIDATIONS = 20


class CRNNSystem(L.LightningModule):
    def __init__(
        self,
        model_config: dict[str, Any],
        charset: str,
        input_policy: dict[str, int],
        lr: float = 1e-3,
        weight_decay: float = 1e-4,
        plateau_patience: int = 200,
        augment: bool = True,
        hold_steps: int = 0,
        warmup_steps: int = 0,
        ema: bool = True,
        fixed_steps: int = 0,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        # Channels-last tensors: the CPU's convolutions run a training step ~20% faster in that layout
        # (nano, batch 32 of 650x32 colour images: 0.32 s -> 0.25 s). Values and checkpoints are the same.
        self.model = CRNN(CRNNConfig.from_dict(model_config)).to(memory_format=torch.channels_last)
        # An exponential moving average of the weights is what validation sees, the checkpoints select
        # and model.pt holds: on a few hundred images one step's weights swing, the average does not.
        self.ema_model = copy.deepcopy(self.model).requires_grad_(False) if ema else None
        self.tokenizer = CTCTokenizer(charset)
        self.ctc = nn.CTCLoss(blank=0, zero_infinity=True)
        self.augmentation = Augmentation() if augment else None
        self.val_cer = CharErrorRate()
        self.val_seq_acc = MeanMetric()
        self.val_loss = MeanMetric()
        self.val_images = SumMetric()  # reduced across processes like the rest: every image counted once
        self.train_loss = MeanMetric()
        self.left_plateau = False  # validation CER has dropped below PLATEAU_CER at least once
        self.best_loss, self.best_step = float("inf"), 0  # for halving the LR on a validation-loss plateau
        self.total_steps = self.fixed_epochs = 0  # the fixed schedule's length, known when training starts
        self.val_stride = 1  # the fixed schedule validates every val_stride epochs, and after its last

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.model(images)

    @property
    def eval_model(self) -> CRNN:
        return self.ema_model if self.ema_model is not None else self.model

    def _loss(
        self, batch: dict[str, torch.Tensor], model: CRNN | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        images = batch["images"].contiguous(memory_format=torch.channels_last)
        # float32 from here (a no-op without autocast): CTC's sums over paths need more than bfloat16's 8 bits
        log_probs = (model or self.model)(images).float().log_softmax(-1)
        loss = self.ctc(
            log_probs.permute(1, 0, 2), batch["targets"], batch["input_lengths"], batch["target_lengths"]
        )
        return loss, log_probs

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        if self.augmentation is not None:
            batch = {**batch, "images": self.augmentation(batch["images"])}
        loss, _ = self._loss(batch)
        self.train_loss.update(loss.detach(), batch["images"].shape[0])
        self.log("train_loss", loss, prog_bar=True, on_step=True, on_epoch=False)
        return loss

    def on_train_start(self) -> None:
        """The fixed schedule's length: `fixed_steps` batches rounded up to whole epochs (the last ends
        with the validation that saves last.ckpt), or fewer when max_epochs comes first; and how often it
        validates. Batches, not optimiser steps: N processes take N batches a step, and the schedule
        must see as many images whatever N (two processes once doubled it, and a 200-label run's time)."""
        if not self.hparams.fixed_steps:
            return
        per_epoch = max(1, int(self.trainer.num_training_batches))  # this process's, one a step
        batches = per_epoch * max(1, self.trainer.world_size)  # every process's
        self.fixed_epochs = math.ceil(self.hparams.fixed_steps / batches)
        if self.trainer.max_epochs is not None and self.trainer.max_epochs > 0:
            self.fixed_epochs = min(self.fixed_epochs, self.trainer.max_epochs)
        self.total_steps = self.fixed_epochs * per_epoch
        self.val_stride = math.ceil(self.fixed_epochs / FIXED_VALIDATIONS)

    def on_train_epoch_start(self) -> None:
        """On the fixed schedule, validate every `val_stride` epochs and after the last one (Lightning
        validates after epoch e when (e + 1) % check_val_every_n_epoch == 0)."""
        if self.total_steps:
            last = self.current_epoch + 1 >= self.fixed_epochs
            self.trainer.check_val_every_n_epoch = 1 if last else self.val_stride

    def on_train_epoch_end(self) -> None:
        if self.total_steps and self.current_epoch + 1 >= self.fixed_epochs:
            self.trainer.should_stop = True

    def on_train_batch_start(self, batch: Any, batch_idx: int) -> None:
        """Linear warm-up of the learning rate over the first `warmup_steps` steps (at most a quarter of
        a short fixed schedule); then, on the fixed schedule, a cosine from the peak to zero."""
        total, step = self.total_steps, self.global_step
        warmup = min(self.hparams.warmup_steps, total // 4) if total else self.hparams.warmup_steps
        if warmup and step <= warmup:
            scale = min(1.0, (step + 1) / warmup)
        elif total:
            scale = 0.5 * (1.0 + math.cos(math.pi * min(1.0, (step - warmup) / max(1, total - warmup))))
        else:
            return  # the plateau schedule: _halve_lr_on_plateau sets the LR
        for group in self.trainer.optimizers[0].param_groups:
            group["lr"] = self.hparams.lr * scale

    def on_train_batch_end(self, outputs: Any, batch: Any, batch_idx: int) -> None:
        if self.trainer.should_stop:  # --max-time's timer (a callback: its hook ran first) ends the run here
            self.trainer.check_val_every_n_epoch = 1  # so the weights it ends with are validated and saved
        self._update_average()

    @torch.no_grad()
    def _update_average(self) -> None:
        if self.ema_model is None:
            return
        # global_step already counts the step just taken: the first update (n = 0, decay 0) copies the live
        # weights, so the average never holds the random weights the model was built with.
        n = self.global_step - 1
        decay = min(EMA_MAX_DECAY, 1.0 - (1.0 + max(n, 0)) ** -EMA_POWER)
        ema_params = list(self.ema_model.parameters())
        torch._foreach_lerp_(ema_params, [p.detach() for p in self.model.parameters()], 1.0 - decay)
        for ema_buffer, buffer in zip(self.ema_model.buffers(), self.model.buffers()):
            ema_buffer.copy_(buffer)  # BatchNorm statistics: the live model's

    def on_validation_epoch_start(self) -> None:
        # DDP copies rank 0's BatchNorm statistics into every process at each training forward, but the
        # last step then updates each copy with its own batch. Validate every shard with rank 0's, the
        # statistics its checkpoint keeps, so the reduced metrics describe the saved model exactly.
        if self.trainer.world_size > 1 and torch.distributed.is_initialized():
            models = [self.model] if self.ema_model is None else [self.model, self.ema_model]
            for model in models:
                for buffer in model.buffers():
                    torch.distributed.broadcast(buffer, src=0)

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        # float32 even when training runs under bfloat16 autocast: the figures that select checkpoints
        # are then those of model.pt as it will be read
        with torch.autocast(self.device.type, enabled=False):
            loss, log_probs = self._loss(batch, self.eval_model)
        decoded = self.tokenizer.decode_batch(
            log_probs.float().cpu().numpy(), batch["input_lengths"].tolist()
        )
        preds = [text for text, _ in decoded]
        truths = self._labels(batch)
        n = len(preds)
        self.val_loss.update(loss, n)
        self.val_cer.update(preds, truths)
        correct = [float(p == t) for p, t in zip(preds, truths)]
        self.val_seq_acc.update(torch.tensor(correct, device=self.device))
        self.val_images.update(torch.tensor(float(n), device=self.device))
        self.log("val_loss", self.val_loss, prog_bar=True, on_epoch=True, batch_size=n)
        self.log("val_cer", self.val_cer, prog_bar=True, on_epoch=True, batch_size=n)
        self.log("val_seq_acc", self.val_seq_acc, prog_bar=True, on_epoch=True, batch_size=n)
        self.log("val_images", self.val_images, on_epoch=True, batch_size=n)

    def _labels(self, batch: dict[str, torch.Tensor]) -> list[str]:
        targets = batch["targets"].tolist()
        out, start = [], 0
        for n in batch["target_lengths"].tolist():
            out.append(self.tokenizer.decode_ids(targets[start : start + n]))
            start += n
        return out

    def on_before_optimizer_step(self, optimizer: torch.optim.Optimizer) -> None:
        """Clip the gradient's norm to GRAD_CLIP, so that one bad batch cannot undo the run. Here rather than
        Trainer(gradient_clip_val), which Lightning refuses for a fused optimizer under mixed precision,
        though bfloat16 scales no gradients."""
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), GRAD_CLIP)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        # fused: one kernel for every tensor rather than a dozen small ops each (CPU and CUDA have it)
        return torch.optim.AdamW(
            self.parameters(),
            lr=self.hparams.lr,
            weight_decay=self.hparams.weight_decay,
            fused=self.device.type in ("cpu", "cuda") or None,
        )

    def holding(self) -> bool:
        """Whether LR cuts and early stopping still wait: for `hold_steps` optimiser steps, and after that
        (up to 4x as long) until the validation CER first drops below PLATEAU_CER.

        CTC first learns to emit only blanks; loss and CER sit flat on that plateau for a few hundred steps,
        longer on some splits and initialisations. Cutting the LR there only makes leaving it slower, and
        counting patience there stops runs that were about to learn.
        """
        if self.global_step < self.hparams.hold_steps:
            return True
        return not self.left_plateau and self.global_step < 4 * self.hparams.hold_steps

    def on_validation_epoch_end(self) -> None:
        if self.trainer.sanity_checking:
            return
        if float(self.val_cer.compute()) < PLATEAU_CER:
            self.left_plateau = True
        self._halve_lr_on_plateau(float(self.val_loss.compute()))

    def _halve_lr_on_plateau(self, loss: float) -> None:
        """Halve the LR when validation loss has not improved by 2% (and by 0.001) for `plateau_patience`
        steps (steps, not epochs, so the rule means the same on 500 images as on 50,000)."""
        step = self.global_step
        if self.hparams.fixed_steps:  # the fixed schedule sets the LR by the step alone
            return
        if improved(loss, self.best_loss) or self.holding():
            self.best_loss, self.best_step = min(loss, self.best_loss), step
        elif step - self.best_step >= self.hparams.plateau_patience:
            for group in self.trainer.optimizers[0].param_groups:
                group["lr"] *= 0.5
            self.best_step = step

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["left_plateau"] = self.left_plateau
        checkpoint["lr_plateau"] = {"best_loss": self.best_loss, "best_step": self.best_step}

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self.left_plateau = bool(checkpoint.get("left_plateau", False))
        state = checkpoint.get("lr_plateau", {})
        self.best_loss = float(state.get("best_loss", float("inf")))
        self.best_step = int(state.get("best_step", 0))
