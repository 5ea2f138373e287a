# oneDNN is optional: bfloat16 GEMMs on AMX / AVX512-BF16 and large float32 blocks (Debian:
# libdnnl-dev). Looking for it must never fail the configure. Debian's oneDNN is built with an
# OpenCL GPU runtime, so its dnnl-config.cmake calls find_package(OpenCL REQUIRED); a REQUIRED
# inside a package's config file is fatal even under find_package(dnnl QUIET). So the package
# is first loaded by a child configure of cmake/onednn-probe, with the same search settings;
# only when that succeeds does this configure load it too.
#
# Sets CIRCUITRY_HAS_ONEDNN (ON or OFF) in the caller's scope and prints one STATUS line; when
# oneDNN cannot be used, the line says why and which Debian package brings what is missing.
function(circuitry_find_onednn)
  set(CIRCUITRY_HAS_ONEDNN OFF PARENT_SCOPE)
  if(NOT CIRCUITRY_WITH_ONEDNN)
    message(STATUS "circuitry: oneDNN not used: CIRCUITRY_WITH_ONEDNN is OFF")
    return()
  endif()
  if(CMAKE_DISABLE_FIND_PACKAGE_dnnl)
    message(STATUS "circuitry: oneDNN not used: CMAKE_DISABLE_FIND_PACKAGE_dnnl is ON")
    return()
  endif()

  # The child sees what this configure sees: the compiler, the search paths, any package
  # hints and every CMAKE_DISABLE_FIND_PACKAGE_<name> the user set.
  set(forwarded -DCMAKE_CXX_COMPILER=${CMAKE_CXX_COMPILER})
  get_cmake_property(cache_variables CACHE_VARIABLES)
  foreach(variable IN LISTS cache_variables)
    if(variable MATCHES "^(CMAKE_DISABLE_FIND_PACKAGE_.*|CMAKE_PREFIX_PATH|CMAKE_FIND_ROOT_PATH|dnnl_DIR|DNNL_DIR|OpenCL_.*|TBB_DIR)$")
      list(APPEND forwarded "-D${variable}=${${variable}}")
    endif()
  endforeach()
  set(probe_dir ${PROJECT_BINARY_DIR}/onednn-probe)
  file(REMOVE_RECURSE ${probe_dir})
  execute_process(COMMAND ${CMAKE_COMMAND} -S ${PROJECT_SOURCE_DIR}/cmake/onednn-probe -B ${probe_dir} ${forwarded}
                  RESULT_VARIABLE probe_status OUTPUT_VARIABLE probe_output ERROR_VARIABLE probe_output)
  if(NOT probe_status EQUAL 0)
    if(probe_output MATCHES "package configuration file provided by \"dnnl\"")
      set(reason "it is not installed (Debian: libdnnl-dev)")
    elseif(probe_output MATCHES "OpenCL")
      set(reason "its CMake package needs OpenCL's development files (Debian: ocl-icd-opencl-dev)")
    elseif(probe_output MATCHES "TBB")
      set(reason "its CMake package needs oneTBB's development files (Debian: libtbb-dev)")
    else()
      set(reason "its CMake package failed to load (see ${probe_dir}/probe.log)")
    endif()
    file(WRITE ${probe_dir}/probe.log "${probe_output}")
    message(STATUS "circuitry: oneDNN not used: ${reason}")
    return()
  endif()

  find_package(dnnl CONFIG QUIET)
  find_package(OpenMP COMPONENTS CXX QUIET)  # oneDNN threads with OpenMP; each call is told to use one thread
  if(NOT dnnl_FOUND)
    message(STATUS "circuitry: oneDNN not used: its CMake package loaded in the probe but not here")
  elseif(NOT OpenMP_CXX_FOUND)
    message(STATUS "circuitry: oneDNN not used: the compiler has no OpenMP, which oneDNN's package needs")
  else()
    message(STATUS "circuitry: oneDNN used for bfloat16 and large float32 GEMMs (${dnnl_DIR})")
    set(CIRCUITRY_HAS_ONEDNN ON PARENT_SCOPE)
  endif()
endfunction()
