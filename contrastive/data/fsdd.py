"""Free Spoken Digit Dataset (FSDD) from the publisher's WAV files.

Jackson et al., "Free Spoken Digit Dataset" (github.com/Jakobovski/
free-spoken-digit-dataset): `recordings/{digit}_{speaker}_{index}.wav`, mono
8 kHz PCM, plus `speakers.json` (speaker metadata, optional here).

Each clip becomes a fixed-length float32 [clip_samples] waveform: samples are
scaled to [-1, 1] (int16 / 32768), LEFT-ALIGNED, zero-padded after the end of
a shorter clip, and a longer clip keeps its first `clip_samples` samples (20
of the 3,000 clips exceed 1 s). 'length' holds the number of real samples,
so `arange(clip_samples) < length` masks the padding.

Splits: the official one (recording index 0-4 'test', 5-49 'train'), or
leave-one-speaker-out with `held_out_speaker` ('test' = that speaker's clips,
'train' = the others'). Speaker ids are positions in the sorted list of all
speaker names found, the same for every split (`info.extras['speakers']`).
"""
from __future__ import annotations

import json
import pathlib
import re
import wave

import numpy as np

from contrastive.data import base
from contrastive.data import sources

WHERE_TO_GET = "https://github.com/Jakobovski/free-spoken-digit-dataset"
CLASS_NAMES = tuple(str(d) for d in range(10))
_NAME_RE = re.compile(r"^(\d)_([A-Za-z]+)_(\d+)\.wav$")
_PCM_DTYPES = {1: np.dtype("u1"), 2: np.dtype("<i2"), 4: np.dtype("<i4")}


def read_wav(path: str | pathlib.Path) -> tuple[np.ndarray, int]:
  """Reads a mono PCM WAV file as float32 in [-1, 1].

  Args:
    path: the file.

  Returns:
    (samples float32 [T], sample_rate). 8-bit PCM is unsigned (offset 128),
    16/32-bit signed; each is divided by its full scale (128, 2^15, 2^31).

  Raises:
    ValueError: the file is not a readable mono PCM WAV (names the path).

  Example:
    audio, rate = read_wav("recordings/7_theo_0.wav")  # rate == 8000
  """
  try:
    with wave.open(str(path), "rb") as w:
      channels, width, rate, num_frames = (
          w.getnchannels(), w.getsampwidth(), w.getframerate(),
          w.getnframes())
      frames = w.readframes(num_frames)
  except (wave.Error, EOFError, OSError) as e:
    raise ValueError(
        f"cannot read WAV file {path}: {e}. FSDD recordings are mono PCM"
        f" WAV; get them again from {WHERE_TO_GET}.") from e
  if channels != 1 or width not in _PCM_DTYPES:
    raise ValueError(
        f"{path}: expected mono PCM with 1, 2 or 4 bytes per sample, got"
        f" {channels} channels of {width} bytes.")
  # `wave` returns whatever bytes are left without complaint, so a copy cut
  # short would otherwise become a shorter clip: compare with the header.
  if len(frames) != num_frames * width:
    raise ValueError(
        f"{path}: truncated WAV file: its header announces {num_frames}"
        f" frames ({num_frames * width} bytes of samples) but only"
        f" {len(frames)} bytes follow. Get the file again from"
        f" {WHERE_TO_GET}.")
  samples = np.frombuffer(frames, _PCM_DTYPES[width]).astype(np.float32)
  if width == 1:
    return (samples - 128.0) / 128.0, rate
  return samples / float(2 ** (8 * width - 1)), rate


def fit_length(audio: np.ndarray, clip_samples: int) -> tuple[np.ndarray, int]:
  """Left-aligned zero padding / cropping to `clip_samples`; (clip, length)."""
  length = min(len(audio), clip_samples)
  clip = np.zeros(clip_samples, np.float32)
  clip[:length] = audio[:length]
  return clip, length


def list_recordings(
    folder: pathlib.Path) -> list[tuple[pathlib.Path, int, str, int]]:
  """(path, digit, speaker, index) of every recording, sorted by file name."""
  recordings = folder / "recordings"
  if not folder.is_dir():
    raise base.missing_data_error(
        "fsdd", folder, "folder does not exist", WHERE_TO_GET)
  if not recordings.is_dir():
    raise base.missing_data_error(
        "fsdd", folder, "no recordings/ subfolder", WHERE_TO_GET)
  found = []
  for path in sorted(recordings.glob("*.wav")):
    match = _NAME_RE.match(path.name)
    if match is None:
      raise ValueError(
          f"{path}: FSDD file names are {{digit}}_{{speaker}}_{{index}}.wav.")
    found.append((path, int(match[1]), match[2], int(match[3])))
  if not found:
    raise base.missing_data_error(
        "fsdd", recordings, "no {digit}_{speaker}_{index}.wav files",
        WHERE_TO_GET)
  return found


def load_fsdd(
    split: str,
    *,
    data_dir: str | pathlib.Path | None = None,
    source: str = "auto",
    download: bool = False,
    cache_dir: str | pathlib.Path | None = None,
    clip_samples: int = 8000,
    sample_rate: int = 8000,
    test_indices: tuple[int, int] = (0, 4),
    held_out_speaker: str | None = None,
) -> base.ArrayDataset:
  """FSDD clips as an in-memory `ArrayDataset` (see the module docstring).

  Args:
    split: 'train' or 'test'.
    data_dir: the folder holding `recordings/`; None tries
      `../shared/data/fsdd` (from the project root), then
      `<cache_dir>/fsdd`.
    source: 'auto' or 'files' (the same here: FSDD is read from the
      publisher's WAV files only); the field exists so that every offline
      dataset takes the same data options.
    download: when no copy is found, download the publisher's files
      (SHA-256 checked) into `data_dir`, else `<cache_dir>/fsdd`.
    cache_dir: the cache root; None means `~/.cache/contrastive`.
    clip_samples: fixed clip length in samples (8000 = 1 s at 8 kHz).
    sample_rate: the rate every file must have (Hz); a mismatch is an error.
    test_indices: inclusive range of recording indices in the official test
      split (0-4 of 0-49); ignored when `held_out_speaker` is set.
    held_out_speaker: a speaker name (e.g. 'theo') for leave-one-speaker-out.

  Returns:
    Examples {'x': float32 [clip_samples], 'label': int32 digit,
    'speaker': int32, 'length': int32, 'index': int32}; 'speaker' and
    'length' are in `info.metadata_names`.

  Example:
    ds = load_fsdd("test", data_dir="free-spoken-digit-dataset")
    len(ds), ds.info.extras["speakers"]  # 300, ('george', 'jackson', ...)
  """
  base.check_split("fsdd", split, ("train", "test"))
  base.check_source("fsdd", source)
  if clip_samples < 1 or sample_rate < 1:
    raise ValueError(f"clip_samples and sample_rate must be >= 1, got"
                     f" {clip_samples} and {sample_rate}.")
  folder = sources.locate("fsdd", data_dir, cache_dir=cache_dir,
                        download=download)
  recordings = list_recordings(folder)
  speakers = tuple(sorted({speaker for _, _, speaker, _ in recordings}))
  if held_out_speaker is not None and held_out_speaker not in speakers:
    raise ValueError(f"held_out_speaker={held_out_speaker!r} is not one of the"
                     f" speakers found in {folder}: {list(speakers)}.")
  lo, hi = (int(i) for i in test_indices)
  if not 0 <= lo <= hi:
    raise ValueError(f"test_indices must be an inclusive range (lo, hi) with"
                     f" 0 <= lo <= hi, got {test_indices!r}.")
  selected = []
  for path, digit, speaker, index in recordings:
    if held_out_speaker is not None:
      is_test = speaker == held_out_speaker
    else:
      is_test = lo <= index <= hi
    if is_test == (split == "test"):
      selected.append((path, digit, speakers.index(speaker)))
  x = np.zeros((len(selected), clip_samples), np.float32)
  lengths = np.zeros(len(selected), np.int32)
  for row, (path, _, _) in enumerate(selected):
    audio, rate = read_wav(path)
    if rate != sample_rate:
      raise ValueError(f"{path}: sample rate {rate} Hz, expected"
                       f" sample_rate={sample_rate}.")
    x[row], lengths[row] = fit_length(audio, clip_samples)
  speaker_info = {}
  if (folder / "speakers.json").is_file():
    try:
      speaker_info = json.loads((folder / "speakers.json").read_text())
    except ValueError as e:
      raise ValueError(f"{folder / 'speakers.json'} is not valid JSON: {e}."
                       f" Get it again from {WHERE_TO_GET}.") from e
  info = base.DatasetInfo(
      name="fsdd", split=split, modality="audio", num_classes=10,
      class_names=CLASS_NAMES, input_shape=(clip_samples,),
      input_dtype="float32", metadata_names=("speaker", "length"),
      extras={"speakers": speakers, "speaker_info": speaker_info,
              "sample_rate": sample_rate, "data_dir": str(folder),
              "held_out_speaker": held_out_speaker})
  arrays = {
      "x": x,
      "label": np.array([d for _, d, _ in selected], np.int32),
      "speaker": np.array([s for _, _, s in selected], np.int32),
      "length": lengths,
  }
  return base.ArrayDataset(arrays, info)
