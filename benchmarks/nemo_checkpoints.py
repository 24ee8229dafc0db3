"""Tiny randomly initialised FastPitch and HiFi-GAN `.nemo` checkpoints, for tests and benchmark dry runs.

No NeMo checkpoint can be downloaded here, so these are built from configs modelled on NeMo's own
(`fastpitch_align_v1.05.yaml`, `hifigan.yaml`), shrunk. They load through the same `restore_from`
path as NVIDIA's checkpoints; what they say is noise.
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

SAMPLE_RATE = 22_050
N_MELS = 80
HOP_LENGTH = 256
UPSAMPLE_RATES = (8, 8, 2, 2)  # their product must be HOP_LENGTH: one mel frame -> HOP_LENGTH samples
DIM = 64
_STFT = {"n_fft": 1024, "n_window_size": 1024, "n_window_stride": HOP_LENGTH, "lowfreq": 0, "highfreq": 8000,
         "window": "hann", "normalize": None, "preemph": None, "dither": 0.0, "frame_splicing": 1, "log": True,
         "mag_power": 1.0}


def _train_ds(dataset_target: str) -> dict:
    # The constructors read the dataset class; defer_setup keeps them from building a dataset.
    return {"defer_setup": True, "dataset": {"_target_": dataset_target}, "dataloader_params": {"batch_size": 1}}


def _transformer(target: str, **extra) -> dict:
    return {"_target_": f"nemo.collections.tts.modules.transformer.{target}", "n_layer": 1, "n_head": 1,
            "d_model": DIM, "d_head": 32, "d_inner": 2 * DIM, "kernel_size": 3, "dropout": 0.0,
            "dropatt": 0.0, "dropemb": 0.0, **extra}


def _predictor() -> dict:
    return {"_target_": "nemo.collections.tts.modules.fastpitch.TemporalPredictor", "input_size": DIM,
            "kernel_size": 3, "filter_size": DIM, "dropout": 0.0, "n_layers": 1}


def fastpitch_config(sample_rate: int = SAMPLE_RATE) -> dict:
    return {
        "sample_rate": sample_rate,
        "n_mel_channels": N_MELS,
        "symbols_embedding_dim": DIM,
        "pitch_embedding_kernel_size": 3,
        # Characters, not phonemes: no G2P dictionary is needed.
        "learn_alignment": True,
        "text_tokenizer": {
            "_target_": "nemo.collections.common.tokenizers.text_to_speech.tts_tokenizers.EnglishCharsTokenizer",
            "punct": True,
            "apostrophe": True,
            "pad_with_space": True,
        },
        # Random weights can predict zero frames for every token; one frame each keeps audio non-empty.
        "min_token_duration": 1,
        "max_token_duration": 75,
        "n_speakers": 1,
        "train_ds": _train_ds("nemo.collections.tts.data.dataset.TTSDataset"),
        "preprocessor": {"_target_": "nemo.collections.asr.modules.AudioToMelSpectrogramPreprocessor",
                         "features": N_MELS, "sample_rate": sample_rate, "window_size": False,
                         "window_stride": False, "pad_to": 1, "pad_value": 0, "log_zero_guard_type": "add",
                         "log_zero_guard_value": 1e-05, **_STFT},
        "input_fft": _transformer("FFTransformerEncoder", d_embed=DIM),
        "output_fft": _transformer("FFTransformerDecoder"),
        "alignment_module": {"_target_": "nemo.collections.tts.modules.aligner.AlignmentEncoder",
                             "n_text_channels": DIM, "n_mel_channels": N_MELS, "n_att_channels": N_MELS},
        "duration_predictor": _predictor(),
        "pitch_predictor": _predictor(),
        "optim": {"name": "adam", "lr": 1e-3},
    }


def hifigan_config(sample_rate: int = SAMPLE_RATE) -> dict:
    return {
        "train_ds": _train_ds("nemo.collections.tts.data.dataset.VocoderDataset"),
        "preprocessor": {"_target_": "nemo.collections.asr.parts.preprocessing.features.FilterbankFeatures",
                         "nfilt": N_MELS, "sample_rate": sample_rate, "pad_to": 0, "pad_value": -11.52,
                         "log_zero_guard_type": "clamp", "log_zero_guard_value": 1e-05, "use_grads": False,
                         "exact_pad": True, **_STFT},
        "generator": {
            "_target_": "nemo.collections.tts.modules.hifigan_modules.Generator",
            "resblock": 2,
            "upsample_rates": list(UPSAMPLE_RATES),
            "upsample_kernel_sizes": [2 * rate for rate in UPSAMPLE_RATES],
            "upsample_initial_channel": 32,
            "resblock_kernel_sizes": [3],
            "resblock_dilation_sizes": [[1, 3]],
        },
        "optim": {"_target_": "torch.optim.AdamW", "lr": 2e-4},
        "max_steps": 1,
    }


class NemoCheckpoints(NamedTuple):
    spectrogram: Path
    vocoder: Path


def build_checkpoints(folder: Path, sample_rate: int = SAMPLE_RATE, seed: int = 0) -> NemoCheckpoints:
    """Write `fastpitch.nemo` and `hifigan.nemo` (under 2 MB together) into `folder`."""
    import torch
    from nemo.collections.tts.models import FastPitchModel, HifiGanModel
    from omegaconf import OmegaConf

    torch.manual_seed(seed)
    folder.mkdir(parents=True, exist_ok=True)
    paths = NemoCheckpoints(folder / "fastpitch.nemo", folder / "hifigan.nemo")
    FastPitchModel(cfg=OmegaConf.create(fastpitch_config(sample_rate))).save_to(str(paths.spectrogram))
    vocoder = HifiGanModel(cfg=OmegaConf.create(hifigan_config(sample_rate)))
    # The discriminators only train the vocoder and are fixed at ~70M parameters (~280 MB): leave them out.
    vocoder.mpd = torch.nn.Module()
    vocoder.msd = torch.nn.Module()
    vocoder.save_to(str(paths.vocoder))
    return paths
