#include "common.hpp"

namespace corenn {
namespace bind {

void bind_optim(py::module_& ops) { (void)ops; }  // TODO(helper)

}  // namespace bind
}  // namespace corenn
