"""Continue training a deployed model: a Hydra model builder that makes the Allegro architecture of the config and
loads the learnable weights of a TorchScript-deployed model of that architecture (the training checkpoint of the
bundled model was not kept; its deployed file holds every weight). The data-derived constants the deployed model
was built with (average neighbour count, per-atom energy shift and scale) are read from it too, so the warm start
is the deployed model exactly (checked: `python warmstart.py DEPLOYED FRAMES`).

In urea_allegro.yaml's place of `allegro.model.AllegroModel` (train.py --from DEPLOYED does it):
    _target_: warmstart.AllegroFromDeployed
    deployed_path: /abs/path/model.nequip.pth
"""
from __future__ import annotations

import sys

import torch

PREFIX = "model.func."


def AllegroFromDeployed(deployed_path: str, **config):
    from allegro.model import AllegroModel

    weights = torch.jit.load(deployed_path, map_location="cpu").state_dict()
    config["avg_num_neighbors"] = float(weights[PREFIX + "allegro.avg_num_neighbors_norm.norm_const"]) ** -2
    config["per_type_energy_shifts"] = float(weights[PREFIX + "per_type_energy_scale_shift.shifts"])
    config["per_type_energy_scales"] = float(weights[PREFIX + "per_type_energy_scale_shift.scales"])
    model = AllegroModel(**config)
    # the deployed file also holds buffers the eager model derives itself (normalisation constants): extra keys
    missing, _ = model.load_state_dict(weights, strict=False)
    if missing:
        raise ValueError(f"{deployed_path} is not of the configured architecture: it lacks {missing}")
    return model


def check(deployed_path: str, frames_path: str, size: str = "small") -> float:
    """Largest force difference (eV/A) between the warm-started eager model and the deployed one on some frames."""
    from ase.io import read
    from nequip.data import AtomicDataDict, from_ase
    from nequip.data.transforms import NeighborListTransform
    from nequip.utils.global_state import set_global_state
    from omegaconf import OmegaConf

    from train import SIZES

    set_global_state()
    cfg = OmegaConf.load("urea_allegro.yaml").training_module.model
    model_cfg = {k: v for k, v in OmegaConf.to_container(cfg, resolve=False).items()
                 if k not in ("_target_", "avg_num_neighbors", "per_type_energy_shifts", "per_type_energy_scales",
                              "type_names", "r_max", "per_edge_type_cutoff", "seed")}
    model_cfg.update(SIZES[size])
    eager = AllegroFromDeployed(deployed_path, seed=123, type_names=["C", "H", "N", "O"], r_max=5.0, **model_cfg)
    deployed = torch.jit.load(deployed_path, map_location="cpu")
    worst = 0.0
    for atoms in read(frames_path, ":3"):
        data = NeighborListTransform(r_max=5.0)(from_ase(atoms))
        data[AtomicDataDict.ATOM_TYPE_KEY] = torch.tensor(
            [["C", "H", "N", "O"].index(s) for s in atoms.get_chemical_symbols()])
        f = [m({k: v.clone() for k, v in data.items()})[AtomicDataDict.FORCE_KEY].detach() for m in (eager, deployed)]
        worst = max(worst, float((f[0] - f[1]).abs().max()))
    return worst


if __name__ == "__main__":
    print(f"largest force difference, warm start vs deployed: {check(*sys.argv[1:]):.2e} eV/A")
