"""The properties: one module each, with its Settings (defaults decided from the system by for_system, checked
by check), its Result (to_dict() is the JSON record; save, plot) and compute(system, settings, run). A new
property is a module here and an entry in PROPERTIES; the CLI and mlipprops.load find it there."""
from __future__ import annotations

from mlipprops.properties import elastic, evaluate, melt, relax

# name -> (module, its JSON file, its Settings class, its Result class)
PROPERTIES = {
    "evaluate": (evaluate, "evaluate.json", evaluate.EvaluateSettings, evaluate.EvaluateResult),
    "relax": (relax, "relax.json", relax.RelaxSettings, relax.RelaxResult),
    "elastic": (elastic, "elastic.json", elastic.ElasticSettings, elastic.ElasticResult),
    "melt": (melt, "melt.json", melt.MeltSettings, melt.MeltResult),
}


def load(path: str):
    """A saved result back: from its folder (or its JSON file), as the Result of its property."""
    import os

    from mlipprops.errors import InputError
    from mlipprops.results import read_json

    if os.path.isdir(path):
        found = [name for name, (_, json_name, _, _) in PROPERTIES.items()
                 if os.path.isfile(os.path.join(path, json_name))]
        if len(found) != 1:
            raise InputError(f"{path}: " + ("no result of mlipprops in it" if not found else
                             f"results of {', '.join(found)} in one folder: give the JSON file"))
        json_path = os.path.join(path, PROPERTIES[found[0]][1])
    elif os.path.isfile(path):
        json_path = path
    else:
        raise InputError(f"{path} not found: give a folder written by mlipprops (or its JSON file)")
    try:
        record = read_json(json_path)
    except ValueError as exc:
        raise InputError(f"{json_path} is not readable JSON ({exc}): was it written by mlipprops?") from None
    if record.get("property") not in PROPERTIES:
        raise InputError(f"{json_path} is not a result of mlipprops (no known `property` in it)")
    return PROPERTIES[record["property"]][3].from_files(record, os.path.dirname(os.path.abspath(json_path)))
