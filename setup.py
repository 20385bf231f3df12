"""Build hook: the wheel carries the repository's ``patches/`` as ``sglang_ext/_patches``
and ``csrc/`` (the CUDA one-launch kernel, built with nvcc on first use) as ``sglang_ext/_csrc``.

The series stays at the top of the repository (``patches/``, where the design puts
it); ``sglang_ext.patching.source.default_patches_dir`` reads it there in a source
checkout or an editable install, and from ``sglang_ext/_patches`` in a built
install (a wheel, ``pip install .`` or ``pip install git+...``). Everything else
about the build is in ``pyproject.toml``.
"""

from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

SERIES_DIR = Path("patches")  # setuptools runs this file from the project root
PACKAGED = Path("sglang_ext") / "_patches"
CSRC_DIR, CSRC_PACKAGED = Path("csrc"), Path("sglang_ext") / "_csrc"


def _csrc_files() -> list[Path]:
    return sorted(p for p in CSRC_DIR.glob("*") if p.suffix in (".cu", ".h", ".cuh"))


class build_py_with_series(build_py):  # noqa: N801 - setuptools command naming
    """``build_py`` that also copies ``patches/`` into the built package."""

    def _series_files(self) -> list[Path]:
        if not (SERIES_DIR / "series").is_file():
            raise SystemExit(
                f"error: {SERIES_DIR.resolve()}/series is missing: build sglang-ext from a "
                f"full checkout (or an sdist made from one)"
            )
        return sorted(p for p in SERIES_DIR.iterdir() if p.is_file())

    def run(self) -> None:
        super().run()
        if getattr(self, "editable_mode", False):
            return  # an editable install reads the checkout's patches/ directly
        dst = Path(self.build_lib) / PACKAGED
        self.mkpath(str(dst))
        for src in self._series_files():
            self.copy_file(str(src), str(dst / src.name))
        csrc = Path(self.build_lib) / CSRC_PACKAGED
        self.mkpath(str(csrc))
        for src in _csrc_files():
            self.copy_file(str(src), str(csrc / src.name))

    def get_outputs(self, include_bytecode: bool = True) -> list[str]:
        outputs = super().get_outputs(include_bytecode)
        if getattr(self, "editable_mode", False):
            return outputs
        dst = Path(self.build_lib) / PACKAGED
        csrc = Path(self.build_lib) / CSRC_PACKAGED
        return (
            outputs
            + [str(dst / p.name) for p in self._series_files()]
            + [str(csrc / p.name) for p in _csrc_files()]
        )


setup(cmdclass={"build_py": build_py_with_series})
