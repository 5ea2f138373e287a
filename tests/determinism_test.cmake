# Results depend only on the inputs: the same command gives identical bytes with 1, 2
# and 3 threads (VARIANTS t1;t2;t3), and when only the lengths of the --model and --out path
# strings change, which moves the heap and so the addresses the kernels see (VARIANTS
# t1;long1;long2). Float32 and float64, on the fixture whose sizes reach the threaded GEMM
# paths. Run by CTest with CLI, FIXTURES, WORK and VARIANTS.
file(REMOVE_RECURSE ${WORK})
file(MAKE_DIRECTORY ${WORK})
set(M ${FIXTURES}/gpt2-small3)
# The same model under a much longer path.
set(LONG_DIR ${WORK}/a-model-directory-whose-name-is-much-longer-than-the-fixture-path-so-every-string-moves-xxxxxxxxxxxxxxxxxxxxxxxx)
file(COPY ${M}/config.json ${M}/model.safetensors DESTINATION ${LONG_DIR})

function(run name)
  execute_process(COMMAND ${CLI} ${ARGN} RESULT_VARIABLE rc OUTPUT_QUIET ERROR_VARIABLE err)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "${name}: exit ${rc}\n${err}")
  endif()
endfunction()

execute_process(COMMAND ${CLI} attribute --model ${M} --task ${M}/task.jsonl --method eap --out ${WORK}/eap.json RESULT_VARIABLE rc)
execute_process(COMMAND ${CLI} prune --scores ${WORK}/eap.json --top-n 40 --out ${WORK}/circuit.json RESULT_VARIABLE rc2)
if(NOT rc EQUAL 0 OR NOT rc2 EQUAL 0)
  message(FATAL_ERROR "could not make the circuit for evaluate")
endif()

# check_same(name ARGS...): the command in every variant (tN: N threads; longN: N threads and long
# --model and --out paths) must write byte-identical files.
function(check_same name)
  set(reference "")
  foreach(variant IN LISTS VARIANTS)
    string(REGEX MATCH "[0-9]$" threads ${variant})
    if(variant MATCHES "^long")
      set(model ${LONG_DIR})
      set(out ${WORK}/${name}-output-file-with-a-long-name-to-shift-the-heap-${variant}-xxxxxxxxxxxxxxxxxxxxxxxxxxxx.json)
    else()
      set(model ${M})
      set(out ${WORK}/${name}-${variant}.json)
    endif()
    run(${name}-${variant} ${ARGN} --model ${model} --task ${M}/task.jsonl --threads ${threads} --out ${out})
    file(SHA256 ${out} hash)
    if(reference STREQUAL "")
      set(reference ${hash})
      set(first ${out})
    elseif(NOT hash STREQUAL reference)
      message(FATAL_ERROR "${name}: ${variant} differs from t1 (compare ${first} and ${out})")
    endif()
  endforeach()
endfunction()

foreach(dtype float32 float64)
  check_same(forward-${dtype} forward --dtype ${dtype})
  check_same(eap-${dtype} attribute --method eap --dtype ${dtype})
  check_same(eap-ig-${dtype} attribute --method eap-ig --steps 3 --dtype ${dtype})
  check_same(exact-${dtype} attribute --method exact --dtype ${dtype})
  # A 1 MB budget: fewer lanes per forward, the same bytes for every thread count.
  check_same(exact-budget-${dtype} attribute --method exact --memory-budget 1 --dtype ${dtype})
  check_same(evaluate-${dtype} evaluate --circuit ${WORK}/circuit.json --dtype ${dtype})
  check_same(path-patch-${dtype} path-patch --senders a0.h1,input --receivers a2.h0<q>,logits --dtype ${dtype})
  check_same(learn-mask-${dtype} learn-mask --edges 20 --steps 3 --dtype ${dtype})
endforeach()
