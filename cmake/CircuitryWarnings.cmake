# Warnings, warnings-as-errors and sanitizers apply to the project's own test targets only,
# never to the circuitry INTERFACE target that users link (taskflow's hygiene).
# GCC 12 at -O3 -march=native reports false positives inside its own AVX-512 intrinsics
# (_mm512_undefined_ps: "used uninitialized", kept as a warning) and in libstdc++'s char_traits
# (-Wrestrict, GCC bug 105329, turned off).
function(circuitry_strict_target target)
  target_compile_options(${target} PRIVATE -Wall -Wextra -Wpedantic -Werror
    -Wno-unused-parameter -Wno-maybe-uninitialized -Wno-error=uninitialized -Wno-restrict)
endfunction()

# Sanitizers (the asan preset) on the project's own programs: the tests and the CLI the tests run.
function(circuitry_sanitize target)
  if(CIRCUITRY_SANITIZE)
    target_compile_options(${target} PRIVATE -fsanitize=${CIRCUITRY_SANITIZE} -fno-omit-frame-pointer)
    target_link_options(${target} PRIVATE -fsanitize=${CIRCUITRY_SANITIZE})
  endif()
endfunction()
