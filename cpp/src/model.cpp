#include "corenn/model.hpp"
