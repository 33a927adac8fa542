#include "corenn/kernels/activation.hpp"

// TODO(helper): implement.
