#include "corenn/kernels/dropout.hpp"

// TODO(helper): implement.
