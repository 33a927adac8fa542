#include "corenn/kernels/pool.hpp"

// TODO(helper): implement.
