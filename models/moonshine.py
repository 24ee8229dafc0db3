"""Where Moonshine's files come from: a folder the user names, or tiny-en as `moonshine-voice==0.0.4` ships it.

The package is located without importing it (its own native library is not used, see `speech.moonshine`) and
its three files are checked against the sizes and sha256 June pins before a session reads them.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from models.embedded import ModelCorrupt, ModelNotFound, package_dir

EMBEDDED_MOONSHINE = "tiny-en"
MOONSHINE_PACKAGE = "moonshine_voice"
MOONSHINE_REQUIREMENT = "moonshine-voice==0.0.4"
_REINSTALL = f"pip install --no-deps --force-reinstall {MOONSHINE_REQUIREMENT}"


@dataclass(frozen=True)
class PinnedFile:
    name: str
    size: int
    sha256: str


TINY_EN = (
    PinnedFile("encoder_model.ort", 13_238_168, "e091ae52fc2a912197af8f7b7ae2e8365b656ff58463313e0660cce59d9e81d3"),
    PinnedFile("decoder_model_merged.ort", 58_327_168,
               "b40193912d8f4af041f2f3e9f7ff23d45b63a1c15a9c7d35fcbebeab3c4273b2"),
    PinnedFile("tokenizer.bin", 249_974, "6884b35fd6377d4c4d32336a0bc152f36b64d1e45b6503683cdc238250a8472d"),
)


@dataclass(frozen=True)
class MoonshineFiles:
    """An ONNX Runtime encoder, a merged decoder (with and without its key/value cache) and the token table."""

    encoder: Path
    decoder: Path
    tokenizer: Path

    @classmethod
    def in_folder(cls, folder: Path) -> MoonshineFiles:
        files = cls(folder / "encoder_model.ort", folder / "decoder_model_merged.ort", folder / "tokenizer.bin")
        if missing := [path.name for path in (files.encoder, files.decoder, files.tokenizer) if not path.is_file()]:
            raise ModelNotFound(f"the Moonshine folder {folder} lacks {', '.join(missing)}")
        return files


def resolve_moonshine(name: str) -> MoonshineFiles:
    """A folder of Moonshine ONNX Runtime files, or `tiny-en` from the installed package (checked)."""
    path = Path(name).expanduser()
    if path.is_dir():
        return MoonshineFiles.in_folder(path)
    if name != EMBEDDED_MOONSHINE:
        raise ModelNotFound(
            f"Moonshine model {name!r} is not a folder and not the embedded {EMBEDDED_MOONSHINE!r}. Give a folder "
            "with encoder_model.ort, decoder_model_merged.ort and tokenizer.bin."
        )
    try:
        folder = package_dir(MOONSHINE_PACKAGE) / "assets" / EMBEDDED_MOONSHINE
    except ModelNotFound:
        raise ModelNotFound(f"Moonshine tiny-en is not installed: {_REINSTALL}") from None
    check_pinned(folder, TINY_EN)
    return MoonshineFiles.in_folder(folder)


def check_pinned(folder: Path, pins: tuple[PinnedFile, ...]) -> None:
    """Raise ModelNotFound for a missing file, ModelCorrupt for one whose size or sha256 differs."""
    for pinned in pins:
        path = folder / pinned.name
        if not path.is_file():
            raise ModelNotFound(f"{path} is missing: {_REINSTALL}")
        if (size := path.stat().st_size) != pinned.size:
            raise ModelCorrupt(f"{path} has {size} bytes, expected {pinned.size}: {_REINSTALL}")
        with open(path, "rb") as file:
            digest = hashlib.file_digest(file, "sha256").hexdigest()
        if digest != pinned.sha256:
            raise ModelCorrupt(f"{path} has sha256 {digest}, expected {pinned.sha256}: {_REINSTALL}")
