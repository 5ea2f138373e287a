// The translation unit that builds the precompiled <circuitry/circuitry.hpp> of the project's
// programs (cmake/CircuitryBuildSpeed.cmake); it has no code of its own.
