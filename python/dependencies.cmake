# `pip install .` (SKBUILD): the C++ dependencies are looked for first, quietly, so that a
# missing one stops the configure with one message naming the Debian packages (scripts/deps.sh
# lists the same), not CMake's page about package configuration files.
set(circuitry_missing "")
find_package(Eigen3 3.3 QUIET NO_MODULE)
if(NOT Eigen3_FOUND)
  list(APPEND circuitry_missing libeigen3-dev)
endif()
find_package(xtensor QUIET)
if(NOT xtensor_FOUND)
  list(APPEND circuitry_missing libxtensor-dev)
endif()
find_package(nlohmann_json 3.9 QUIET)
if(NOT nlohmann_json_FOUND)
  list(APPEND circuitry_missing nlohmann-json3-dev)
endif()
find_package(Python 3.9 COMPONENTS Interpreter Development.Module QUIET)
if(NOT Python_Development.Module_FOUND)
  list(APPEND circuitry_missing python3-dev)
endif()
if(circuitry_missing)
  list(JOIN circuitry_missing " " circuitry_missing)
  message(FATAL_ERROR "circuitry: missing Debian packages for the Python package; run:\n"
                      "  sudo apt-get install -y ${circuitry_missing}\n"
                      "then pip install . again")
endif()
