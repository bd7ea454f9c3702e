"""mlipprops: materials properties from (machine-learned) interatomic potentials through LAMMPS."""
__version__ = "0.1.0"
