#include "corenn/kernels/optim.hpp"

// TODO(helper): implement.
