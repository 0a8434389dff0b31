"""Download torchvision datasets with torchvision's own download and checksum code, atomically.

Layout: every dataset lives in its own directory ``root/<name>``, which is the ``root`` handed to its
torchvision class (so ``root/mnist/MNIST/raw/...``, ``root/cifar10/cifar-10-batches-py/...``,
``root/svhn/train_32x32.mat``). A download goes to a temporary directory beside it, every file is checked
against torchvision's md5s, and only then is the directory renamed into place: ``root/<name>`` is either
absent or complete. The same layout serves a pre-downloaded root (``data_root``) on machines without
internet; :func:`verify_dataset` checks one without touching the network.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from torchvision import datasets as tv_datasets
from torchvision.datasets.utils import calculate_md5, check_integrity, download_url, extract_archive

from hessian_spectra.data.catalog import dataset_info
from hessian_spectra.data.check import check_splits

log = logging.getLogger(__name__)

TORCHVISION_CLASSES = {
    "mnist": "MNIST",
    "fashionmnist": "FashionMNIST",
    "cifar10": "CIFAR10",
    "cifar100": "CIFAR100",
    "svhn": "SVHN",
}
SVHN_SPLITS = ("train", "test")  # the 1.3 GB `extra` split is not used by any study
READY_FILE = "READY.json"


@dataclass(frozen=True)
class _Fetch:
    """One file to download (trying ``urls`` in order) into ``directory`` and optionally extract there."""

    urls: tuple[str, ...]
    filename: str
    md5: str
    directory: str
    extract: bool


@dataclass(frozen=True)
class _Expected:
    """One file a complete dataset directory holds; ``md5`` is None where torchvision records none."""

    path: str
    md5: str | None


def _tv_class(name: str) -> type:
    dataset_info(name)
    if name not in TORCHVISION_CLASSES:
        raise ValueError(f"dataset {name!r} is embedded (scikit-learn) and has no torchvision files")
    return getattr(tv_datasets, TORCHVISION_CLASSES[name])


def _mirror_urls(name: str, urls: list[str], filename: str, mirror: str | None) -> tuple[str, ...]:
    """torchvision's URLs, or the mirror's: the mirror replaces everything before the file name.

    ``{name}`` in the mirror is replaced by the dataset name, so one mirror setting can serve every dataset
    (MNIST and FashionMNIST share file names).
    """
    if mirror is None:
        return tuple(urls)
    if "://" not in mirror:
        raise ValueError(f"mirror {mirror!r} is not a URL (expected e.g. https://host/path/)")
    base = mirror.replace("{name}", name).rstrip("/")
    return (f"{base}/{filename}",)


def _plan(name: str, mirror: str | None = None) -> tuple[list[_Fetch], list[_Expected]]:
    """What to download for ``name`` and which files (with md5s) a complete directory holds.

    Read from the torchvision class attributes at call time, so the md5s are torchvision's own.
    """
    cls = _tv_class(name)
    fetches: list[_Fetch] = []
    expected: list[_Expected] = []
    if name in ("mnist", "fashionmnist"):
        raw = f"{cls.__name__}/raw"
        for filename, md5 in cls.resources:
            urls = _mirror_urls(name, [f"{m}{filename}" for m in cls.mirrors], filename, mirror)
            fetches.append(_Fetch(urls, filename, md5, raw, extract=True))
            expected.append(_Expected(f"{raw}/{filename}", md5))
            expected.append(_Expected(f"{raw}/{os.path.splitext(filename)[0]}", None))
    elif name in ("cifar10", "cifar100"):
        fetches.append(
            _Fetch(_mirror_urls(name, [cls.url], cls.filename, mirror), cls.filename, cls.tgz_md5, ".", True)
        )
        expected.append(_Expected(cls.filename, cls.tgz_md5))
        for filename, md5 in list(cls.train_list) + list(cls.test_list):
            expected.append(_Expected(f"{cls.base_folder}/{filename}", md5))
        expected.append(_Expected(f"{cls.base_folder}/{cls.meta['filename']}", cls.meta["md5"]))
    else:  # svhn
        for split in SVHN_SPLITS:
            url, filename, md5 = cls.split_list[split]
            fetches.append(_Fetch(_mirror_urls(name, [url], filename, mirror), filename, md5, ".", extract=False))
            expected.append(_Expected(filename, md5))
    return fetches, expected


def torchvision_root(name: str, root: str | Path) -> Path:
    """The directory to pass as ``root`` to the dataset's torchvision class: ``root/<name>``."""
    dataset_info(name)
    return Path(root).expanduser() / name


def expected_files(name: str) -> list[tuple[str, str | None]]:
    """``(path relative to torchvision_root, md5 or None)`` of every file a complete copy holds."""
    if not dataset_info(name).needs_download:
        return []
    return [(e.path, e.md5) for e in _plan(name)[1]]


def _fill_hint(name: str, base: Path) -> str:
    """How to fill the torchvision root ``base`` of ``name``: the download command writes ``ROOT/NAME``, so it fits
    a root named after the dataset; any other root (a shared ``data_root``) is filled by torchvision itself."""
    if base.name == name:
        return f"download it with `hessian-spectra download --dataset {name} --root {base.parent}`"
    cls = TORCHVISION_CLASSES[name]
    splits = [f"split='{split}', " for split in SVHN_SPLITS] if name == "svhn" else [""]
    calls = "; ".join(f"torchvision.datasets.{cls}('{base}', {split}download=True)" for split in splits)
    return (
        f"{base} is a torchvision root such as `data_root`: fill it on a machine with internet with "
        f'`python -c "import torchvision; {calls}"`, or set `data_root: null` so that the workflow downloads it '
        f"into resources/data/{name}"
    )


def _check_files(name: str, base: Path, expected: list[_Expected], md5: bool) -> None:
    missing = [e.path for e in expected if not (base / e.path).is_file()]
    if missing:
        raise FileNotFoundError(
            f"dataset {name}: missing file(s) in {base}: {', '.join(missing)} ({_fill_hint(name, base)})"
        )
    if md5:
        bad = [e for e in expected if e.md5 is not None and not check_integrity(str(base / e.path), e.md5)]
        if bad:
            details = ", ".join(f"{e.path} (md5 {calculate_md5(str(base / e.path))}, expected {e.md5})" for e in bad)
            raise RuntimeError(f"dataset {name}: corrupt file(s) in {base}: {details}")


def verify_dataset(name: str, root: str | Path, *, md5: bool = True) -> None:
    """Check that the torchvision root ``root`` holds every file of ``name``, with torchvision's md5s.

    ``root`` is what :func:`prepare_dataset` returns, or a pre-downloaded torchvision root (``data_root``).
    ``FileNotFoundError`` names what is missing, ``RuntimeError`` what is corrupt; ``md5=False`` checks
    presence only. Embedded datasets (digits, mnist5k) need nothing and always pass.
    """
    if not dataset_info(name).needs_download:
        return
    base = Path(root).expanduser()
    if not base.is_dir():
        raise FileNotFoundError(f"dataset {name}: {base} does not exist ({_fill_hint(name, base)})")
    _check_files(name, base, _plan(name)[1], md5)


def check_contents(name: str, root: str | Path) -> int:
    """Check the labels and image shapes a complete torchvision root ``root`` of ``name`` holds (``data.check``,
    against the catalogue's classes); return the number of classes."""
    cls = _tv_class(name)
    images, labels = {}, {}
    for split in ("train", "test"):
        if name == "svhn":
            data = cls(str(root), split=split, download=False)
        else:
            data = cls(str(root), train=split == "train", download=False)
        images[split] = np.asarray(data.data)
        labels[split] = np.asarray(data.labels if name == "svhn" else data.targets)
    return check_splits(str(root), images, labels, dataset_info(name).num_classes)


def _fetch(name: str, fetch: _Fetch, tmp: Path) -> None:
    directory = tmp / fetch.directory
    path = directory / fetch.filename
    errors = []
    for url in fetch.urls:
        try:
            download_url(url, str(directory), fetch.filename, fetch.md5)
        except Exception as err:  # URLError, HTTPError, IncompleteRead, torchvision's md5 RuntimeError, ...
            detail = f"{type(err).__name__}: {err}".strip()
            if path.is_file():
                detail += (
                    f" (got {path.stat().st_size} bytes with md5 {calculate_md5(str(path))}, expected md5 {fetch.md5})"
                )
            errors.append(f"{url}: {detail}")
            path.unlink(missing_ok=True)
            continue
        if fetch.extract:
            try:
                extract_archive(str(path), str(directory))
            except Exception as err:
                raise RuntimeError(f"dataset {name}: could not extract {fetch.filename}: {err}") from err
        log.info("dataset %s: %s ok (md5 %s)", name, fetch.filename, fetch.md5)
        return
    raise RuntimeError(f"dataset {name}: download of {fetch.filename} failed; tried " + "; ".join(errors))


def _install(name: str, tmp: Path, target: Path, expected: list[_Expected]) -> None:
    """Rename the verified ``tmp`` onto ``target``, replacing an incomplete copy there."""
    old = None
    if target.exists():
        old = Path(tempfile.mkdtemp(prefix=f".{name}.old-", dir=target.parent))
        os.replace(target, old / name)
    try:
        os.rename(tmp, target)
    except OSError:
        # Another process installed it meanwhile: keep theirs if it is complete.
        _check_files(name, target, expected, md5=True)
    finally:
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)


def prepare_dataset(name: str, root: str | Path, mirror: str | None = None) -> Path:
    """Download ``name`` into ``root/<name>`` (its torchvision root) and return that directory.

    Files come from torchvision's URLs (or ``mirror``: it replaces the URL up to the file name; ``{name}`` in
    it becomes the dataset name) through torchvision's ``download_url``, are checked with its
    ``check_integrity`` against its md5s, extracted, and the whole directory is renamed into place. A failed,
    truncated or corrupt download raises ``RuntimeError`` naming the dataset and file and leaves nothing
    behind. An existing complete, verified copy is kept as it is; an incomplete one is replaced. Embedded
    datasets (digits, mnist5k) need no files: their directory is created empty.
    """
    info = dataset_info(name)
    target = torchvision_root(name, root)
    if not info.needs_download:
        target.mkdir(parents=True, exist_ok=True)
        return target
    fetches, expected = _plan(name, mirror)
    if target.exists():
        try:
            _check_files(name, target, expected, md5=True)
        except (FileNotFoundError, RuntimeError) as err:
            log.warning("%s; downloading it again", err)
        else:
            log.info("dataset %s: %s is complete and verified, kept", name, target)
            return target
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{name}.download-", dir=target.parent))
    try:
        for fetch in fetches:
            _fetch(name, fetch, tmp)
        _check_files(name, tmp, expected, md5=True)
        _install(name, tmp, target, expected)
    except FileNotFoundError as err:
        raise RuntimeError(f"dataset {name}: download incomplete: {err}") from err
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    log.info("dataset %s: ready in %s", name, target)
    return target


def manifest(name: str, root: str | Path) -> dict:
    """What ``READY.json`` records: every file under the torchvision root ``root`` with its size and md5."""
    base = Path(root)
    files = []
    for path in sorted(p for p in base.rglob("*") if p.is_file() and p.name != READY_FILE):
        files.append(
            {"path": path.relative_to(base).as_posix(), "size": path.stat().st_size, "md5": calculate_md5(str(path))}
        )
    return {
        "format": 1,
        "dataset": name,
        "source": dataset_info(name).source,
        "root": str(base.resolve()),
        "files": files,
    }
