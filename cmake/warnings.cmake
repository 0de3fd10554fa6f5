add_library(la_warnings INTERFACE)
target_compile_options(la_warnings INTERFACE
  -Wall -Wextra -Wpedantic -Wshadow -Wconversion -Wsign-conversion
  -Wimplicit-fallthrough -Wformat=2
  $<$<COMPILE_LANGUAGE:CXX>:-Wold-style-cast -Wnon-virtual-dtor>
  $<$<BOOL:${LA_WERROR}>:-Werror>)
