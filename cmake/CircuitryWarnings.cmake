# Warnings, warnings-as-errors and sanitizers apply to the project's own test targets only,
# never to the circuitry INTERFACE target that users link (taskflow's hygiene).
function(circuitry_strict_target target)
  target_compile_options(${target} PRIVATE -Wall -Wextra -Wpedantic -Werror
    -Wno-unused-parameter -Wno-maybe-uninitialized)
endfunction()
