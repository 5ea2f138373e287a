# Build speed for the project's own programs (the library target itself is untouched):
#
# - One precompiled <circuitry/circuitry.hpp> for the CLI, the benchmarks and the examples:
#   parsing the whole library (Eigen, xtensor, nlohmann) costs each translation unit about 7 s,
#   the precompiled header a fraction of one. It is built once, by the object library
#   circuitry_pch, and reused by every target that calls circuitry_precompile_library_headers()
#   (they share its flags: -march, build type, sanitizers). CMAKE_DISABLE_PRECOMPILE_HEADERS=ON
#   turns it off. The tests do not use it: through a precompiled header GCC 12 no longer treats
#   libstdc++'s locations as a system header's, so its -O3 false positives inside std::string
#   (-Wstringop-overflow, -Warray-bounds on `"literal" + std::string&&`) would break their
#   -Werror, and the tests' strict warnings are worth the seconds.
# - ccache, when installed, for rebuilds from a fresh clone (a second clone, CI on the same
#   machine); its sloppiness settings let it cache translation units that use the header.
if(PROJECT_IS_TOP_LEVEL AND NOT CMAKE_CXX_COMPILER_LAUNCHER)
  find_program(CIRCUITRY_CCACHE ccache)
  if(CIRCUITRY_CCACHE)
    set(CMAKE_CXX_COMPILER_LAUNCHER ${CMAKE_COMMAND} -E env "CCACHE_SLOPPINESS=pch_defines,time_macros,include_file_mtime,include_file_ctime"
        ${CIRCUITRY_CCACHE})
    message(STATUS "circuitry: compiling through ccache (${CIRCUITRY_CCACHE})")
  endif()
endif()

function(circuitry_precompile_library_headers target)
  if(NOT TARGET circuitry_pch)
    add_library(circuitry_pch OBJECT ${PROJECT_SOURCE_DIR}/cmake/pch/pch.cpp)
    target_link_libraries(circuitry_pch PRIVATE circuitry::circuitry)
    target_precompile_headers(circuitry_pch PRIVATE <circuitry/circuitry.hpp>)
    circuitry_sanitize(circuitry_pch)
  endif()
  target_precompile_headers(${target} REUSE_FROM circuitry_pch)
  circuitry_sanitize(${target})  # the header's flags: a sanitized header serves only sanitized units
  target_compile_options(${target} PRIVATE $<$<CXX_COMPILER_ID:GNU>:-Wno-stringop-overflow>)  # the false positives above
endfunction()
