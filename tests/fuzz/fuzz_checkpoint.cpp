// Fuzz target: the training-checkpoint loader (redi/train/checkpoint.hpp): the safetensors
// reader, the metadata (step, seed, data position), the model configuration from JSON, and
// load_checkpoint's per-tensor checks and reads into a tiny model.
#include "fuzz_common.hpp"
#include "fuzz_models.hpp"
#include "redi/train/checkpoint.hpp"

static void run(const std::uint8_t* data, std::size_t size) {
  using namespace redi;
  static fuzz::ScratchFile scratch(".safetensors");
  static fuzz::CkptModel model(fuzz::ckpt_model_options());
  const std::string& path = scratch.write(data, size);
  try {
    (void)train::read_checkpoint_model_config(path);
  } catch (const Error&) {
  }
  (void)train::load_checkpoint(path, model);
}
REDI_FUZZ_TARGET(run)
