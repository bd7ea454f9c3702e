"""A TorchScript pair potential with the deployed-NequIP/Allegro interface, for fast unit tests.

Not a stand-in for the real models in tests/models (trained by nequip): it exercises the file format, the input
and output dictionary and the dtype rules, in milliseconds. Per-edge Morse energy with a smooth cutoff; forces
and virial by autograd inside forward, as deployed NequIP models do.
"""
from __future__ import annotations

from typing import Dict

import torch


class ToyPairModel(torch.nn.Module):
    def __init__(self, r_max: float, dtype: torch.dtype):
        super().__init__()
        self.r_max = r_max
        self.dtype = dtype
        self.d0 = torch.nn.Parameter(torch.tensor([[0.30, 0.40], [0.40, 0.55]], dtype=dtype))
        self.r0 = torch.nn.Parameter(torch.tensor([[2.55, 2.70], [2.70, 2.88]], dtype=dtype))
        self.alpha = 1.4

    def forward(self, data: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
        pos = data["pos"].to(self.dtype)
        edge_index = data["edge_index"]
        types = data["atom_types"].reshape(-1)
        n = pos.shape[0]
        strain = torch.zeros((3, 3), dtype=self.dtype)
        strain.requires_grad_(True)
        pos = pos + pos @ strain
        pos.requires_grad_(True)
        vec = pos[edge_index[1]] - pos[edge_index[0]]
        if "edge_cell_shift" in data:
            cell = data["cell"].reshape(3, 3).to(self.dtype)
            cell = cell + cell @ strain
            vec = vec + data["edge_cell_shift"].to(self.dtype) @ cell
        r = torch.linalg.norm(vec, dim=1)
        ti, tj = types[edge_index[0]], types[edge_index[1]]
        x = torch.exp(-self.alpha * (r - self.r0[ti, tj]))
        cut = 0.5 * (torch.cos(torch.pi * r / self.r_max) + 1.0) * (r < self.r_max).to(self.dtype)
        e_edge = 0.5 * self.d0[ti, tj] * (x * x - 2.0 * x) * cut  # each pair appears twice
        atomic = torch.zeros(n, dtype=self.dtype).index_add(0, edge_index[0], e_edge)
        total = atomic.sum()
        grads = torch.autograd.grad([total], [pos, strain])
        forces, dE_deps = grads[0], grads[1]
        out = dict(data)
        out["atomic_energy"] = atomic.reshape(-1, 1)
        out["total_energy"] = total.reshape(1, 1)
        out["forces"] = -forces if forces is not None else torch.zeros_like(pos)
        virial = -dE_deps if dE_deps is not None else torch.zeros((3, 3), dtype=self.dtype)
        out["virial"] = virial.reshape(1, 3, 3)
        return out


def save_toy_model(path, r_max: float = 4.5, dtype: str = "float64", legacy: bool = True) -> str:
    model = torch.jit.script(ToyPairModel(r_max, getattr(torch, dtype)))
    if legacy:
        extra = {"r_max": str(r_max), "type_names": "Cu Au", "n_species": "2", "nequip_version": "0.6.2",
                 "torch_version": torch.__version__, "model_dtype": dtype, "default_dtype": dtype,
                 "allow_tf32": "0", "config": "toy"}
    else:
        extra = {"r_max": str(r_max), "type_names": "Cu Au", "num_types": "2", "model_dtype": dtype,
                 "allow_tf32": "0"}
    torch.jit.save(model, str(path), _extra_files=extra)
    return str(path)
