// redi/diffusion/diffusion.hpp — everything of the diffusion layer: the Network contract,
// objectives (redi::DDPM, redi::FlowMatching), redi::JointLoss, guidance policies and
// samplers. See docs/objectives.md, docs/samplers.md, docs/guidance.md.
#pragma once
#include "redi/diffusion/guidance.hpp"
#include "redi/diffusion/loss.hpp"
#include "redi/diffusion/network.hpp"
#include "redi/diffusion/objectives.hpp"
#include "redi/diffusion/samplers.hpp"
#include "redi/diffusion/schedule.hpp"
