#include "corenn/kernels/init.hpp"

// TODO(helper): implement.
