#include "corenn/kernels/conv.hpp"

// TODO(helper): implement.
