# la_header_check: every public header compiles on its own (self-contained headers).
file(GLOB_RECURSE LA_HEADERS RELATIVE ${PROJECT_SOURCE_DIR}
  ${PROJECT_SOURCE_DIR}/io/*.hpp ${PROJECT_SOURCE_DIR}/crypto/*.hpp ${PROJECT_SOURCE_DIR}/core/*.hpp
  ${PROJECT_SOURCE_DIR}/net/*.hpp ${PROJECT_SOURCE_DIR}/cli/*.hpp ${PROJECT_SOURCE_DIR}/tpm/*.hpp)
set(LA_HEADER_TUS)
foreach(h ${LA_HEADERS})
  string(MAKE_C_IDENTIFIER ${h} id)
  set(tu ${CMAKE_BINARY_DIR}/header_check/${id}.cpp)
  file(CONFIGURE OUTPUT ${tu} CONTENT "#include \"${h}\"\n")
  list(APPEND LA_HEADER_TUS ${tu})
endforeach()
# The C client header must compile as C11 too.
set(LA_C_HEADER_TU ${CMAKE_BINARY_DIR}/header_check/license_client_h.c)
file(CONFIGURE OUTPUT ${LA_C_HEADER_TU} CONTENT "#include \"license_client.h\"\n")
add_library(la_header_check OBJECT ${LA_HEADER_TUS} ${LA_C_HEADER_TU})
target_include_directories(la_header_check PRIVATE ${PROJECT_SOURCE_DIR}/net/client/include)
target_link_libraries(la_header_check PRIVATE la_net la_daemon la_cli_support la_tpm PkgConfig::WOLFSSL)
