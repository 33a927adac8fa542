#include "common.hpp"

namespace corenn {
namespace bind {

void bind_conv(py::module_& ops) { (void)ops; }  // TODO(helper)

}  // namespace bind
}  // namespace corenn
