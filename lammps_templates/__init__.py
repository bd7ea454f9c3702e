"""LAMMPS command blocks the engine sends (formatted with str.format). Also readable as a standalone deck."""
