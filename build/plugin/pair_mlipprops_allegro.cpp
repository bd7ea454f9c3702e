/* Pair style mlipprops/allegro: evaluate a deployed Allegro/NequIP TorchScript model inside LAMMPS.

   Two input conventions (see the header):
   - local (strictly local models such as Allegro, any number of ranks): the model gets the positions of the
     local atoms and of those ghost atoms that are neighbours of a local atom, edges only from local centres to
     any atom within the cutoff, and no cell. The energy is the sum of the atomic energies of the local atoms;
     the model's forces on ghost atoms go back to their owners through the reverse communication of newton
     pair on.
   - periodic (message-passing models such as NequIP, whose later layers pass messages through neighbours'
     neighbours; one rank): the model gets the local atoms only, edges to the owners of the ghost neighbours,
     and each edge's image offset as a Cartesian cell shift (with an identity cell), so every edge vector is
     exactly the LAMMPS one, also under a strain applied to the atoms alone (compute born/matrix numdiff).
   The global virial is filled whenever LAMMPS asks for it (never by f.r over all atoms: under hybrid/overlay
   f holds other styles' forces, and compute born/matrix asks for the pair virial alone): from the model's
   own forces over its nodes (local), or the model's virial output (periodic).
*/

#include "pair_mlipprops_allegro.h"

#include "atom.h"
#include "comm.h"
#include "error.h"
#include "force.h"
#include "memory.h"
#include "neigh_list.h"
#include "neighbor.h"
#include "platform.h"
#include "update.h"
#include "utils.h"

#include <ATen/Parallel.h>
#include <caffe2/serialize/inline_container.h>
#include <torch/csrc/jit/runtime/graph_executor.h>
#include <torch/cuda.h>
#include <torch/script.h>

#include <algorithm>
#include <climits>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <malloc.h>
#include <sstream>
#include <unordered_map>

using namespace LAMMPS_NS;

namespace {

const char *STYLE = "mlipprops/allegro";

std::string dtype_name(torch::ScalarType t)
{
  return t == torch::kFloat32 ? "float32" : t == torch::kFloat64 ? "float64" : c10::toString(t);
}

// "float32"/"float64" (also "torch.float32", "float", "double") -> scalar type; -1 if not recognised
int parse_dtype(std::string s)
{
  if (s.rfind("torch.", 0) == 0) s = s.substr(6);
  if (s == "float32" || s == "float") return static_cast<int>(torch::kFloat32);
  if (s == "float64" || s == "double") return static_cast<int>(torch::kFloat64);
  return -1;
}

std::string trim(const std::string &s)
{
  const char *ws = " \t\r\n";
  auto b = s.find_first_not_of(ws);
  if (b == std::string::npos) return "";
  return s.substr(b, s.find_last_not_of(ws) - b + 1);
}

std::vector<std::string> split_words(const std::string &s)
{
  std::istringstream in(s);
  std::vector<std::string> out;
  for (std::string w; in >> w;) out.push_back(w);
  return out;
}

// the message of a torch exception in one line: without the C++ backtrace that c10::Error carries, and for an
// error raised inside the TorchScript model, its own last line (the interpreter's traceback above it is long)
std::string torch_message(const std::exception &e)
{
  auto ce = dynamic_cast<const c10::Error *>(&e);
  std::string msg = ce ? ce->what_without_backtrace() : e.what();
  auto cut = msg.find(" (Could this error message be improved?");
  if (cut != std::string::npos) msg = msg.substr(0, cut);
  msg = trim(msg);
  if (msg.find("The following operation failed in the TorchScript interpreter") != std::string::npos) {
    auto last = msg.find_last_of('\n');
    if (last != std::string::npos) msg = trim(msg.substr(last + 1));
  }
  for (auto &c : msg)
    if (c == '\n' || c == '\r') c = ' ';
  return msg;
}

// glibc hands large freed blocks back to the OS (mmap'd ones always, the top of the heap above the trim
// threshold) and page-faults them in again on the next step: with a model of the paper's size that is about a
// million page faults per step, 1.2-3.4 times the step's time (shared/FACTS.md). Keep freed memory for reuse
// instead (peak memory rises: reported by the benchmarks). MLIPPROPS_MALLOC_TUNE=0 leaves glibc's defaults.
bool tune_malloc()
{
  const char *env = std::getenv("MLIPPROPS_MALLOC_TUNE");
  if (env && std::strcmp(env, "0") == 0) return false;
  mallopt(M_MMAP_MAX, 0);
  mallopt(M_TRIM_THRESHOLD, INT_MAX);
  return true;
}

// thread count: MLIPPROPS_TORCH_THREADS, else OMP_NUM_THREADS, else 1
int torch_threads(std::string &source)
{
  for (const char *name : {"MLIPPROPS_TORCH_THREADS", "OMP_NUM_THREADS"}) {
    const char *v = std::getenv(name);
    if (v && *v) {
      char *end = nullptr;
      long n = std::strtol(v, &end, 10);
      if (end != v && n >= 1 && n <= 4096) {
        source = name;
        return static_cast<int>(n);
      }
    }
  }
  source = "default";
  return 1;
}

}    // namespace

/* ---------------------------------------------------------------------- */

PairMlippropsAllegro::PairMlippropsAllegro(LAMMPS *lmp) : Pair(lmp)
{
  single_enable = 0;
  restartinfo = 0;
  one_coeff = 1;
  manybody_flag = 1;
  // the virial comes from the model's own forces (or virial output), never from f.r over f: see compute()
  no_virial_fdotr_compute = 1;
  unit_convert_flag = 0;    // the model's units are those it was trained in (eV, Angstrom for metal)

  // JIT graph optimisation (profiling executor) for the model's forward; MLIPPROPS_TORCH_JIT_OPTIMIZE=0/1
  const char *opt = std::getenv("MLIPPROPS_TORCH_JIT_OPTIMIZE");
  jit_optimize_ = opt && *opt ? (std::strcmp(opt, "0") != 0) : false;
}

PairMlippropsAllegro::~PairMlippropsAllegro()
{
  if (copymode) return;
  if (allocated) {
    memory->destroy(setflag);
    memory->destroy(cutsq);
  }
}

void PairMlippropsAllegro::allocate()
{
  allocated = 1;
  const int n = atom->ntypes;
  memory->create(setflag, n + 1, n + 1, "pair:setflag");
  memory->create(cutsq, n + 1, n + 1, "pair:cutsq");
  for (int i = 0; i <= n; i++)
    for (int j = 0; j <= n; j++) setflag[i][j] = 0;
}

/* ---------------------------------------------------------------------- */

void PairMlippropsAllegro::settings(int narg, char **arg)
{
  graph_request_.clear();
  device_request_ = "auto";
  for (int i = 0; i < narg; i++) {
    if (std::strcmp(arg[i], "local") == 0 || std::strcmp(arg[i], "periodic") == 0) {
      graph_request_ = arg[i];
    } else if (std::strcmp(arg[i], "device") == 0 && i + 1 < narg &&
               (std::strcmp(arg[i + 1], "auto") == 0 || std::strcmp(arg[i + 1], "cpu") == 0 ||
                std::strcmp(arg[i + 1], "cuda") == 0)) {
      device_request_ = arg[++i];
    } else {
      error->all(FLERR, "pair_style {} [local|periodic] [device auto|cpu|cuda]: unknown argument '{}'", STYLE,
                 arg[i]);
    }
  }
}

/* the device the model runs on: a CUDA GPU when asked (or, for auto, when torch has one), one per rank by the
   rank's place on its node (MPI launchers say it: MPI_LOCALRANKID, OMPI_COMM_WORLD_LOCAL_RANK, SLURM_LOCALID) */
torch::Device PairMlippropsAllegro::choose_device()
{
  const bool cuda = torch::cuda::is_available();
  if (device_request_ == "cpu" || (device_request_ == "auto" && !cuda)) return torch::Device(torch::kCPU);
  if (!cuda)
    error->all(FLERR, "pair_style {} device cuda: this torch sees no CUDA device (a CPU build, or no GPU); use "
               "device cpu (or auto)", STYLE);
  int local = comm->me;
  for (const char *name : {"MPI_LOCALRANKID", "OMPI_COMM_WORLD_LOCAL_RANK", "SLURM_LOCALID"}) {
    const char *v = std::getenv(name);
    if (v && *v) {
      local = std::atoi(v);
      break;
    }
  }
  return torch::Device(torch::kCUDA, local % static_cast<int>(torch::cuda::device_count()));
}

/* ----------------------------------------------------------------------
   pair_coeff * * model.pth El_1 ... El_ntypes
------------------------------------------------------------------------- */

void PairMlippropsAllegro::coeff(int narg, char **arg)
{
  if (!allocated) allocate();
  const int ntypes = atom->ntypes;

  if (narg < 3)
    error->all(FLERR, "pair_coeff for {}: expected `pair_coeff * * <model.pth> <element for each of the {} "
               "atom types>`", STYLE, ntypes);
  if (std::strcmp(arg[0], "*") != 0 || std::strcmp(arg[1], "*") != 0)
    error->all(FLERR, "pair_coeff for {}: the first two arguments must be `* *`, got `{} {}`", STYLE,
               arg[0], arg[1]);
  if (narg != 3 + ntypes)
    error->all(FLERR, "pair_coeff for {}: {} element(s) given for {} atom type(s): give one element per "
               "atom type, `pair_coeff * * <model.pth> El_1 ... El_{}`", STYLE, narg - 3, ntypes, ntypes);

  // find the file: as given, else through LAMMPS_POTENTIALS
  std::string path = arg[2];
  if (!platform::file_is_readable(path)) {
    std::string found = utils::get_potential_file_path(path);
    if (found.empty())
      error->all(FLERR, "pair_coeff for {}: model file '{}' not found (or not readable)", STYLE, path);
    path = found;
  }

  load_model(path);

  // LAMMPS types -> model types
  type_map_.assign(ntypes + 1, -1);
  std::string known;
  for (const auto &t : type_names_) known += (known.empty() ? "" : " ") + t;
  for (int itype = 1; itype <= ntypes; itype++) {
    const std::string el = arg[2 + itype];
    if (el == "NULL")
      error->all(FLERR, "pair_coeff for {}: NULL is not supported; every atom type must be one of the "
                 "model's elements ({})", STYLE, known);
    auto it = std::find(type_names_.begin(), type_names_.end(), el);
    if (it == type_names_.end())
      error->all(FLERR, "pair_coeff for {}: element '{}' (atom type {}) is not in model {}, which knows: {}",
                 STYLE, el, itype, path, known);
    type_map_[itype] = it - type_names_.begin();
  }

  // cutoffs by LAMMPS type pair [centre][neighbour]; per edge type when the model has them
  const int nmodel = type_names_.size();
  cutsq_model_.assign((ntypes + 1) * (ntypes + 1), 0.0);
  cutmax_ = 0.0;
  for (int i = 1; i <= ntypes; i++)
    for (int j = 1; j <= ntypes; j++) {
      double c = per_type_cutoff_.empty() ? r_max_
                                          : per_type_cutoff_[type_map_[i] * nmodel + type_map_[j]];
      cutsq_model_[i * (ntypes + 1) + j] = c * c;
      cutmax_ = std::max(cutmax_, c);
    }

  for (int i = 1; i <= ntypes; i++)
    for (int j = i; j <= ntypes; j++) setflag[i][j] = 1;

  if (comm->me == 0) {
    std::string mapping;
    for (int itype = 1; itype <= ntypes; itype++)
      mapping += fmt::format(" {}->{}({})", itype, arg[2 + itype], type_map_[itype]);
    utils::logmesg(lmp, "{}: atom types -> model types:{}; neighbour cutoff {} (r_max {}{})\n", STYLE,
                   mapping, cutmax_, r_max_, per_type_cutoff_.empty() ? "" : ", per edge type cutoffs");
  }
}

/* ----------------------------------------------------------------------
   check the archive, load the TorchScript model and read its metadata
------------------------------------------------------------------------- */

void PairMlippropsAllegro::load_model(const std::string &path)
{
  // 1. what kind of file is it? Only look at the zip directory: never unpickle anything.
  {
    std::vector<std::string> records;
    try {
      caffe2::serialize::PyTorchStreamReader reader(path);
      records = reader.getAllRecords();
    } catch (const std::exception &e) {
      error->all(FLERR, "{}: '{}' is not a deployed TorchScript model: it is not a PyTorch zip archive "
                 "({})", STYLE, path, torch_message(e));
    }
    bool has_code = false, has_constants = false, has_data = false, is_aoti = false;
    bool has_convnet = false, has_allegro = false;
    for (const auto &r : records) {
      if (r.rfind("code/", 0) == 0) has_code = true;
      // the same rules as mlipprops/models.py: NequIP convolution layers pass messages; Allegro is local
      if (r.find("code/__torch__/nequip/nn/") != std::string::npos && r.find("convnetlayer") != std::string::npos)
        has_convnet = true;
      if (r.find("code/__torch__/allegro/nn/_allegro.py") != std::string::npos) has_allegro = true;
      if (r == "constants.pkl") has_constants = true;
      if (r == "data.pkl") has_data = true;
      if (r.find("aotinductor") != std::string::npos) is_aoti = true;
    }
    if (!(has_code && has_constants)) {
      if (is_aoti)
        error->all(FLERR, "{}: '{}' is an AOTInductor package (.pt2), not TorchScript; compile the model "
                   "with `nequip-compile --mode torchscript` (or deploy it with `nequip-deploy build`)",
                   STYLE, path);
      if (has_data)
        error->all(FLERR, "{}: '{}' is a torch.save checkpoint (pickled weights), not a deployed "
                   "TorchScript model; deploy it with `nequip-deploy build` (nequip 0.6) or "
                   "`nequip-compile --mode torchscript` (nequip >= 0.7)", STYLE, path);
      error->all(FLERR, "{}: '{}' is a zip archive but not a TorchScript model (no code/ and "
                 "constants.pkl)", STYLE, path);
    }
    architecture_ = has_convnet ? "nequip" : has_allegro ? "allegro" : "unknown";
  }

  // 2. load it, with its metadata (malloc tuned first: the model's own buffers then stay in the heap too)
  const bool malloc_tuned = tune_malloc();
  std::unordered_map<std::string, std::string> meta;
  for (const char *k : {"r_max", "type_names", "num_types", "n_species", "per_edge_type_cutoff",
                        "model_dtype", "default_dtype", "allow_tf32", "nequip_version"})
    meta[k] = "";
  torch::jit::ExtraFilesMap extra(meta.begin(), meta.end());
  try {
    device_ = choose_device();
    model_ = torch::jit::load(path, device_, extra);
  } catch (const std::exception &e) {
    error->all(FLERR, "{}: could not load TorchScript model '{}': {}", STYLE, path, torch_message(e));
  }
  for (auto &kv : extra) meta[kv.first] = trim(kv.second);

  if (meta["r_max"].empty() || meta["type_names"].empty())
    error->all(FLERR, "{}: '{}' is a TorchScript model without NequIP/Allegro metadata (r_max, "
               "type_names); was it made with `nequip-deploy build` or `nequip-compile`?", STYLE, path);

  // 3. metadata
  try {
    r_max_ = std::stod(meta["r_max"]);
  } catch (std::exception &) {
    error->all(FLERR, "{}: '{}' has an unreadable r_max '{}'", STYLE, path, meta["r_max"]);
  }
  if (!(r_max_ > 0.0)) error->all(FLERR, "{}: '{}' has r_max {} <= 0", STYLE, path, r_max_);

  type_names_ = split_words(meta["type_names"]);
  const int nmodel = type_names_.size();
  const std::string &count = !meta["num_types"].empty() ? meta["num_types"] : meta["n_species"];
  if (!count.empty() && std::atoi(count.c_str()) != nmodel)
    error->all(FLERR, "{}: '{}' metadata disagree: {} type names ({}) but {} types", STYLE, path, nmodel,
               meta["type_names"], count);

  per_type_cutoff_.clear();
  if (!meta["per_edge_type_cutoff"].empty()) {
    std::istringstream in(meta["per_edge_type_cutoff"]);
    for (double c; in >> c;) per_type_cutoff_.push_back(c);
    if ((int) per_type_cutoff_.size() != nmodel * nmodel || !in.eof())
      error->all(FLERR, "{}: '{}' has a per_edge_type_cutoff that is not {}x{} numbers: '{}'", STYLE, path,
                 nmodel, nmodel, meta["per_edge_type_cutoff"]);
    for (double c : per_type_cutoff_)
      if (!(c > 0.0) || c > r_max_ * (1.0 + 1e-12))
        error->all(FLERR, "{}: '{}' has a per edge type cutoff {} outside (0, r_max = {}]", STYLE, path, c,
                   r_max_);
  }

  // format and the dtype of the positions it wants (the rules of mlipprops/models.py). nequip >= 0.7
  // (.nequip.pth): always float64 in and out. Legacy nequip-deploy (0.6): the data dtype is default_dtype
  // (model_dtype may differ inside the model), else model_dtype, else float32.
  const bool legacy = meta["num_types"].empty();    // nequip-compile writes num_types, nequip-deploy n_species
  model_format_ = legacy ? "legacy nequip-deploy" : "nequip >= 0.7";
  int dt = -1;
  if (legacy) {
    dt = parse_dtype(meta["default_dtype"]);
    if (dt < 0) dt = parse_dtype(meta["model_dtype"]);
    if (dt < 0) dt = static_cast<int>(torch::kFloat32);
  } else {
    dt = static_cast<int>(torch::kFloat64);
  }
  pos_dtype_ = static_cast<torch::ScalarType>(dt);
  pos_dtype_confirmed_ = false;

  // 4. inference set-up: eval mode, frozen (constants folded) when it is not already
  model_.eval();
  bool frozen_now = false;
  const char *freeze_env = std::getenv("MLIPPROPS_TORCH_FREEZE");    // 0: run the model as loaded
  const bool want_freeze = !(freeze_env && std::strcmp(freeze_env, "0") == 0);
  if (want_freeze && model_.hasattr("training")) {
    try {
      model_ = torch::jit::freeze(model_);
      frozen_now = true;
    } catch (const std::exception &e) {
      if (comm->me == 0)
        error->warning(FLERR, "{}: could not freeze the model, running it unfrozen: {}", STYLE,
                       torch_message(e));
    }
  }

  std::string source;
  const int nthreads = torch_threads(source);
  at::set_num_threads(nthreads);

  model_loaded_ = true;
  model_path_ = path;
  periodic_ = graph_request_.empty() ? architecture_ != "allegro" : graph_request_ == "periodic";

  if (comm->me == 0) {
    utils::logmesg(lmp,
                   "{}: loaded {} ({} model{}, nequip {}, model dtype {}, positions {}, r_max {}, "
                   "types: {})\n",
                   STYLE, path, model_format_, frozen_now ? ", frozen on load" : "",
                   meta["nequip_version"].empty() ? "?" : meta["nequip_version"],
                   meta["model_dtype"].empty() ? "?" : meta["model_dtype"], dtype_name(pos_dtype_), r_max_,
                   meta["type_names"]);
    utils::logmesg(lmp, "{}: device {}, torch intra-op threads = {} (from {}), JIT graph optimisation {}\n",
                   STYLE, device_.str(), at::get_num_threads(), source, jit_optimize_ ? "on" : "off");
    utils::logmesg(lmp, "{}: architecture {}, input graph {}{}; malloc keeps freed memory: {}\n", STYLE,
                   architecture_, periodic_ ? "periodic" : "local", graph_request_.empty() ? "" : " (as requested)",
                   malloc_tuned ? "yes" : "no (MLIPPROPS_MALLOC_TUNE=0)");
  }
}

/* ---------------------------------------------------------------------- */

void PairMlippropsAllegro::init_style()
{
  if (force->newton_pair == 0)
    error->all(FLERR, "Pair style {} requires newton pair on (the model's forces on ghost atoms are "
               "sent back to their owners)", STYLE);
  if (!model_loaded_) error->all(FLERR, "Pair style {}: no model, use pair_coeff * * <model.pth> ...", STYLE);
  if (periodic_ && comm->nprocs > 1)
    error->all(FLERR, "Pair style {}: {} is a {} model, evaluated on a periodic graph, which needs all atoms on "
               "one MPI rank (a message-passing model's messages through ghost atoms would be wrong); run it on "
               "1 rank per LAMMPS instance, or, if it is strictly local like Allegro, use `pair_style {} local`",
               STYLE, model_path_, architecture_ == "nequip" ? "NequIP (message-passing)" : "not Allegro (unknown)",
               STYLE);
  if (periodic_ && atom->map_style == Atom::MAP_NONE)
    error->all(FLERR, "Pair style {} with a periodic graph needs an atom map: use `atom_modify map yes`", STYLE);
  if (comm->me == 0 && std::strcmp(update->unit_style, "metal") != 0)
    error->warning(FLERR, "Pair style {}: units {}; the model works in the units it was trained in "
                   "(usually eV and Angstrom: units metal)", STYLE, update->unit_style);

  // a full list over local atoms, whose neighbours include ghosts; ghosts need no lists of their own
  neighbor->add_request(this, NeighConst::REQ_FULL);
}

double PairMlippropsAllegro::init_one(int, int)
{
  return cutmax_;
}

/* ---------------------------------------------------------------------- */

c10::IValue PairMlippropsAllegro::forward(c10::Dict<std::string, torch::Tensor> &input,
                                          const torch::Tensor &pos)
{
  input.insert_or_assign("pos", pos.to(device_));
  if (periodic_) {
    // an identity cell: the shifts are Cartesian offsets, and the model's strain derivative stays exact
    input.insert_or_assign("cell", torch::eye(3, pos.options().device(device_)).reshape({1, 3, 3}));
    input.insert_or_assign("edge_cell_shift",
                           torch::from_blob(edge_shift_.data(), {(int64_t) edge_src_.size(), 3}, torch::kFloat64)
                               .to(device_, pos.scalar_type()));
  }
  std::vector<torch::IValue> args{input};
  // the model computes forces with autograd inside forward: gradients stay on (no NoGradGuard)
  torch::jit::GraphOptimizerEnabledGuard guard(jit_optimize_);
  return model_.forward(args);
}

/* every pair (local centre i, neighbour j) within the cutoff of its types, in neighbour-list order */
template <class Edge> void PairMlippropsAllegro::each_edge(Edge edge)
{
  double **x = atom->x;
  const int *type = atom->type;
  const int ntypes1 = atom->ntypes + 1;
  for (int ii = 0; ii < list->inum; ii++) {
    const int i = list->ilist[ii];
    const double xi = x[i][0], yi = x[i][1], zi = x[i][2];
    const double *cutsq_i = &cutsq_model_[type[i] * ntypes1];
    const int *jlist = list->firstneigh[i];
    for (int jj = 0; jj < list->numneigh[i]; jj++) {
      const int j = jlist[jj] & NEIGHMASK;
      const double dx = x[j][0] - xi, dy = x[j][1] - yi, dz = x[j][2] - zi;
      if (dx * dx + dy * dy + dz * dz < cutsq_i[type[j]]) edge(i, j);
    }
  }
}

/* nodes: local atoms first (node = atom index), then the ghosts that are neighbours of a local atom; edges
   from local centres to any node within the cutoff of the pair's types */
void PairMlippropsAllegro::build_local_graph(int nall)
{
  const int nlocal = atom->nlocal;
  node_of_atom_.assign(nall, -1);
  atom_of_node_.resize(nlocal);
  for (int i = 0; i < nlocal; i++) {
    node_of_atom_[i] = i;
    atom_of_node_[i] = i;
  }
  edge_src_.clear();
  edge_dst_.clear();
  each_edge([&](int i, int j) {
    int &nj = node_of_atom_[j];
    if (nj < 0) {
      nj = atom_of_node_.size();
      atom_of_node_.push_back(j);
    }
    edge_src_.push_back(i);
    edge_dst_.push_back(nj);
  });
}

/* nodes: the local atoms (one rank: all atoms); an edge to a ghost neighbour goes to its owner, with the
   ghost's offset from the owner as the edge's shift */
void PairMlippropsAllegro::build_periodic_graph()
{
  double **x = atom->x;
  const tagint *tag = atom->tag;
  const int nlocal = atom->nlocal;
  atom_of_node_.resize(nlocal);
  for (int i = 0; i < nlocal; i++) atom_of_node_[i] = i;
  edge_src_.clear();
  edge_dst_.clear();
  edge_shift_.clear();
  each_edge([&](int i, int j) {
    const int owner = j < nlocal ? j : atom->map(tag[j]);
    if (owner < 0 || owner >= nlocal)
      error->one(FLERR, "{}: ghost atom {} has no local owner on this rank (periodic graph)", STYLE, tag[j]);
    edge_src_.push_back(i);
    edge_dst_.push_back(owner);
    for (int k = 0; k < 3; k++) edge_shift_.push_back(x[j][k] - x[owner][k]);
  });
}

void PairMlippropsAllegro::compute(int eflag, int vflag)
{
  ev_init(eflag, vflag);
  if (vflag_atom || cvflag_atom)
    error->all(FLERR, "Pair style {} does not compute per-atom virials (compute stress/atom and alike)",
               STYLE);

  double **x = atom->x;
  double **f = atom->f;
  const int *type = atom->type;
  const int nall = atom->nlocal + atom->nghost;
  const int inum = list->inum;
  const int *ilist = list->ilist;
  if (inum == 0) return;

  if (periodic_)
    build_periodic_graph();
  else
    build_local_graph(nall);
  const int64_t nnodes = atom_of_node_.size();
  const int64_t nedges = edge_src_.size();

  torch::Tensor pos64 = torch::empty({nnodes, 3}, torch::kFloat64);
  torch::Tensor types = torch::empty({nnodes}, torch::kInt64);
  torch::Tensor edge_index = torch::empty({2, nedges}, torch::kInt64);
  {
    double *p = pos64.data_ptr<double>();
    int64_t *t = types.data_ptr<int64_t>();
    for (int64_t k = 0; k < nnodes; k++) {
      const int a = atom_of_node_[k];
      p[3 * k] = x[a][0];
      p[3 * k + 1] = x[a][1];
      p[3 * k + 2] = x[a][2];
      t[k] = type_map_[type[a]];
    }
    int64_t *e = edge_index.data_ptr<int64_t>();
    std::copy(edge_src_.begin(), edge_src_.end(), e);
    std::copy(edge_dst_.begin(), edge_dst_.end(), e + nedges);
  }
  c10::Dict<std::string, torch::Tensor> input;  // (the host copies above, then to the model's device once)
  input.insert("edge_index", edge_index.to(device_));
  input.insert("atom_types", types.to(device_));

  // evaluate; on the first call, a dtype complaint about the positions gets one retry in the other dtype
  c10::IValue out;
  try {
    out = forward(input, pos64.to(pos_dtype_));
    pos_dtype_confirmed_ = true;
  } catch (const std::exception &e) {
    const std::string first = torch_message(e);
    if (pos_dtype_confirmed_)
      error->one(FLERR, "{}: model evaluation failed ({} atoms, {} edges): {}", STYLE, nnodes, nedges, first);
    const torch::ScalarType other = pos_dtype_ == torch::kFloat64 ? torch::kFloat32 : torch::kFloat64;
    try {
      out = forward(input, pos64.to(other));
    } catch (const std::exception &e2) {
      error->one(FLERR, "{}: model evaluation failed with {} positions: {}\n(and with {} positions: {})",
                 STYLE, dtype_name(pos_dtype_), first, dtype_name(other), torch_message(e2));
    }
    if (comm->me == 0)
      error->warning(FLERR, "{}: the model rejected {} positions but accepts {}: using {}", STYLE,
                     dtype_name(pos_dtype_), dtype_name(other), dtype_name(other));
    pos_dtype_ = other;
    pos_dtype_confirmed_ = true;
  }

  torch::Tensor forces, atomic_energy, model_virial;
  try {
    auto dict = out.toGenericDict();
    forces = dict.at("forces").toTensor().detach().to(torch::kCPU, torch::kFloat64).contiguous();
    atomic_energy = dict.at("atomic_energy").toTensor().detach().to(torch::kCPU, torch::kFloat64)
                        .reshape({-1}).contiguous();
    if (periodic_ && vflag_global) {
      // virial = -stress * volume; the volume of the identity cell is 1
      if (dict.contains("virial"))
        model_virial = dict.at("virial").toTensor().detach().to(torch::kCPU, torch::kFloat64).reshape({3, 3});
      else if (dict.contains("stress"))
        model_virial = -dict.at("stress").toTensor().detach().to(torch::kCPU, torch::kFloat64).reshape({3, 3});
    }
  } catch (const std::exception &e) {
    error->one(FLERR, "{}: the model's output lacks `forces` or `atomic_energy`: {}", STYLE, torch_message(e));
  }
  if (forces.dim() != 2 || forces.size(0) != nnodes || forces.size(1) != 3 ||
      atomic_energy.size(0) != nnodes)
    error->one(FLERR, "{}: model outputs of unexpected shape: forces {}, atomic_energy {} for {} atoms", STYLE,
               c10::str(forces.sizes()), c10::str(atomic_energy.sizes()), nnodes);
  if (periodic_ && vflag_global && !model_virial.defined())
    error->one(FLERR, "{}: the model outputs neither `virial` nor `stress`, which a periodic graph needs for "
               "the pressure; deploy it with stress output (StressForceOutput)", STYLE);

  const double *fk = forces.data_ptr<double>();
  const double *ek = atomic_energy.data_ptr<double>();
  for (int64_t k = 0; k < nnodes; k++) {
    const int a = atom_of_node_[k];
    f[a][0] += fk[3 * k];
    f[a][1] += fk[3 * k + 1];
    f[a][2] += fk[3 * k + 2];
  }
  if (eflag_global || eflag_atom) {
    double esum = 0.0;
    for (int ii = 0; ii < inum; ii++) {
      const int i = ilist[ii];
      esum += ek[i];
      if (eflag_atom) eatom[i] += ek[i];
    }
    if (eflag_global) eng_vdwl += esum;
  }

  if (vflag_global) {
    if (periodic_) {
      auto w = model_virial.accessor<double, 2>();
      virial[0] += w[0][0];
      virial[1] += w[1][1];
      virial[2] += w[2][2];
      virial[3] += 0.5 * (w[0][1] + w[1][0]);
      virial[4] += 0.5 * (w[0][2] + w[2][0]);
      virial[5] += 0.5 * (w[1][2] + w[2][1]);
    } else {
      // sum of r.f over the model's nodes: its forces sum to zero, so the origin does not matter, and each
      // rank's sum is the strain derivative of its local atoms' energy
      double v[6] = {0.0, 0.0, 0.0, 0.0, 0.0, 0.0};
      for (int64_t k = 0; k < nnodes; k++) {
        const double *r = x[atom_of_node_[k]];
        const double *fr = fk + 3 * k;
        v[0] += r[0] * fr[0];
        v[1] += r[1] * fr[1];
        v[2] += r[2] * fr[2];
        v[3] += r[0] * fr[1];
        v[4] += r[0] * fr[2];
        v[5] += r[1] * fr[2];
      }
      for (int m = 0; m < 6; m++) virial[m] += v[m];
    }
  }
}
