"""NeMo speech: a spectrogram generator (FastPitch) and a vocoder (HiFi-GAN) from `.nemo` checkpoints."""

from __future__ import annotations

import logging
import tarfile
from pathlib import Path

import numpy as np
import torch

log = logging.getLogger(__name__)

SPECTROGRAM_SETTING = "JUNE_TTS_NEMO_SPECTROGRAM"
VOCODER_SETTING = "JUNE_TTS_NEMO_VOCODER"
# HiFi-GAN's discriminators only serve training; a checkpoint made for inference may leave them out.
_TRAINING_ONLY = ("mpd.", "msd.")


class NemoBackend:
    def __init__(self, spectrogram_path: Path | None, vocoder_path: Path | None, device: str = "cpu"):
        spectrogram_path = checkpoint_path(spectrogram_path, SPECTROGRAM_SETTING, "FastPitch")
        vocoder_path = checkpoint_path(vocoder_path, VOCODER_SETTING, "HiFi-GAN")
        try:
            from nemo.collections.tts.models.base import SpectrogramGenerator, Vocoder
        except ImportError as error:
            raise RuntimeError('the NeMo TTS backend needs NeMo: pip install -e ".[nemo]"') from error

        self.device = device
        self.spectrogram = _restore(SpectrogramGenerator, spectrogram_path, SPECTROGRAM_SETTING, device)
        self.vocoder = _restore(Vocoder, vocoder_path, VOCODER_SETTING, device)
        spectrogram_rate = self.spectrogram.cfg.preprocessor.sample_rate
        self.sample_rate = int(self.vocoder.cfg.preprocessor.sample_rate)
        if spectrogram_rate != self.sample_rate:
            raise ValueError(
                f"the spectrogram generator ({SPECTROGRAM_SETTING}={spectrogram_path}) works at {spectrogram_rate} Hz "
                f"but the vocoder ({VOCODER_SETTING}={vocoder_path}) at {self.sample_rate} Hz: use a matching pair"
            )
        log.info("nemo tts loaded: %s + %s on %s (%d Hz)", type(self.spectrogram).__name__,
                 type(self.vocoder).__name__, device, self.sample_rate)

    def synthesize_sentence(self, sentence: str) -> np.ndarray:
        with torch.inference_mode():
            tokens = self.spectrogram.parse(sentence)
            if tokens.shape[-1] == 0:  # nothing the tokenizer knows, e.g. only emoji
                return np.zeros(0, np.float32)
            spectrogram = self.spectrogram.generate_spectrogram(tokens=tokens)
            audio = self.vocoder.convert_spectrogram_to_audio(spec=spectrogram)
        return audio.squeeze(0).float().cpu().numpy()


def checkpoint_path(path: Path | None, setting: str, model: str) -> Path:
    if path is None:
        raise ValueError(f"{setting} is not set: give the path of a {model} .nemo checkpoint")
    path = Path(path).expanduser()
    if not path.exists():
        raise FileNotFoundError(f"{setting}={path} does not exist: give the path of a {model} .nemo checkpoint")
    if not path.is_file():
        raise ValueError(f"{setting}={path} is not a file: give the path of a {model} .nemo checkpoint")
    if not tarfile.is_tarfile(path):
        raise ValueError(f"{setting}={path} is not a .nemo archive: give the path of a {model} .nemo checkpoint")
    return path


def _restore(kind: type, path: Path, setting: str, device: str):
    """Restore a model of any class from `path`, then make sure it is the `kind` the setting asks for."""
    from nemo.core.connectors.save_restore_connector import SaveRestoreConnector

    class InferenceRestore(SaveRestoreConnector):
        """Strict loading, except that missing training-only weights keep the model's own."""

        def load_instance_with_state_dict(self, instance, state_dict, strict):
            own = {key: value for key, value in instance.state_dict().items() if key.startswith(_TRAINING_ONLY)}
            super().load_instance_with_state_dict(instance, {**own, **state_dict}, strict)

    model = kind.restore_from(str(path), map_location=torch.device(device), save_restore_connector=InferenceRestore())
    if not isinstance(model, kind):  # a wrong setting, not a wrong argument type
        raise ValueError(  # noqa: TRY004
            f"{setting}={path} holds a {type(model).__name__}, not a {kind.__name__}: "
            f"are {SPECTROGRAM_SETTING} and {VOCODER_SETTING} swapped?"
        )
    return model.eval()
