// The whole public C++ API in one include:
//   find_package(corenn CONFIG REQUIRED)
//   target_link_libraries(app PRIVATE corenn::corenn)
#pragma once

#include "corenn/error.hpp"
#include "corenn/io.hpp"
#include "corenn/model.hpp"
#include "corenn/random.hpp"
#include "corenn/runtime.hpp"
#include "corenn/tensor.hpp"
