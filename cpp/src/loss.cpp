#include "corenn/kernels/loss.hpp"

// TODO(helper): implement.
