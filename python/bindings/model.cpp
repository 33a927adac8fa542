#include "common.hpp"

namespace corenn {
namespace bind {

void bind_model(py::module_& m) { (void)m; }  // TODO: engine

}  // namespace bind
}  // namespace corenn
