# The command line over MPI ranks (apps/processes.hpp): `mpirun -np N circuitry ...` writes the
# bytes a one-process run writes, for exact patching (the groups of lanes over the ranks, N = 2 and
# an uneven N = 3), a gradient method, the MIB curve (its circuits), ACDC's sweep (its passes), one
# ACDC pass (its windows), learn-mask (its restarts) and compare (its methods);
# a command that does not split is refused on several ranks, and an error on the ranks ends them all with a non-zero status.
# Run by CTest with CLI, MPIEXEC, FIXTURES and WORK; CI has 2 cores, so ranks are oversubscribed.
file(REMOVE_RECURSE ${WORK})
file(MAKE_DIRECTORY ${WORK})
set(M ${FIXTURES}/gpt2-small3)
# Open MPI refuses root unless told, and needs no remote shell for ranks on this machine.
set(ENV{OMPI_ALLOW_RUN_AS_ROOT} 1)
set(ENV{OMPI_ALLOW_RUN_AS_ROOT_CONFIRM} 1)
set(ENV{OMPI_MCA_plm_rsh_agent} "")
set(ENV{OMPI_MCA_rmaps_base_oversubscribe} 1)

function(run name)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "${name}: exit ${rc}\n${out}\n${err}")
  endif()
endfunction()

function(check_same_file name a b)
  file(READ ${a} text_a)
  file(READ ${b} text_b)
  # acdc.json's "seconds" is the one value that is a timing.
  string(REGEX REPLACE "\"seconds\": [^,\n]*" "\"seconds\": T" text_a "${text_a}")
  string(REGEX REPLACE "\"seconds\": [^,\n]*" "\"seconds\": T" text_b "${text_b}")
  if(NOT text_a STREQUAL text_b)
    message(FATAL_ERROR "${name}: ${a} and ${b} differ")
  endif()
endfunction()

set(task --model ${M} --task ${M}/task.jsonl --threads 1)
# Exact patching with a small budget, so that there are many groups of lanes to split.
run(exact-1 ${CLI} attribute ${task} --method exact --memory-budget 1 --out ${WORK}/exact-1.json)
foreach(n 2 3)
  run(exact-${n} ${MPIEXEC} -np ${n} ${CLI} attribute ${task} --method exact --memory-budget 1 --out ${WORK}/exact-${n}.json)
  check_same_file(exact-${n} ${WORK}/exact-1.json ${WORK}/exact-${n}.json)
endforeach()

# A gradient method: its parts (here one: the fixture's task fits the budget) over the ranks.
run(eap-ig-1 ${CLI} attribute ${task} --method eap-ig --out ${WORK}/eap-ig-1.json)
run(eap-ig-2 ${MPIEXEC} -np 2 ${CLI} attribute ${task} --method eap-ig --out ${WORK}/eap-ig-2.json)
check_same_file(eap-ig-2 ${WORK}/eap-ig-1.json ${WORK}/eap-ig-2.json)

# The MIB curve of the exact scores: its ten circuits over two ranks.
run(curve-1 ${CLI} evaluate ${task} --scores ${WORK}/exact-1.json --out ${WORK}/curve-1.json --svg ${WORK}/curve-1.svg)
run(curve-2 ${MPIEXEC} -np 2 ${CLI} evaluate ${task} --scores ${WORK}/exact-1.json --out ${WORK}/curve-2.json --svg ${WORK}/curve-2.svg)
check_same_file(curve-2 ${WORK}/curve-1.json ${WORK}/curve-2.json)
check_same_file(curve-2-svg ${WORK}/curve-1.svg ${WORK}/curve-2.svg)

# ACDC's sweep, three passes over two ranks: every circuit and acdc.json the same.
set(sweep --thresholds 0.001,0.01,0.1 --lanes 4)
run(acdc-1 ${CLI} acdc ${task} ${sweep} --out ${WORK}/acdc-1)
run(acdc-2 ${MPIEXEC} -np 2 ${CLI} acdc ${task} ${sweep} --out ${WORK}/acdc-2)
foreach(file acdc.json circuit-00.json circuit-01.json circuit-02.json)
  check_same_file(acdc-2-${file} ${WORK}/acdc-1/${file} ${WORK}/acdc-2/${file})
endforeach()

# One ACDC pass (fewer passes than ranks): its windows over two and three ranks, the same files.
set(pass --threshold 0.01 --lanes 2)
run(acdc-pass-1 ${CLI} acdc ${task} ${pass} --out ${WORK}/acdc-pass-1)
foreach(n 2 3)
  run(acdc-pass-${n} ${MPIEXEC} -np ${n} ${CLI} acdc ${task} ${pass} --out ${WORK}/acdc-pass-${n})
  foreach(file acdc.json circuit-00.json)
    check_same_file(acdc-pass-${n}-${file} ${WORK}/acdc-pass-1/${file} ${WORK}/acdc-pass-${n}/${file})
  endforeach()
endforeach()

# learn-mask's restarts over two ranks: the circuit and its log (times aside) the same.
set(mask --edges 12 --steps 3 --restarts 3 --lr 0.5)
run(learn-mask-1 ${CLI} learn-mask ${task} ${mask} --out ${WORK}/mask-1.json)
run(learn-mask-2 ${MPIEXEC} -np 2 ${CLI} learn-mask ${task} ${mask} --out ${WORK}/mask-2.json)
check_same_file(learn-mask-2 ${WORK}/mask-1.json ${WORK}/mask-2.json)
check_same_file(learn-mask-2-log ${WORK}/mask-1.log.json ${WORK}/mask-2.log.json)

# compare: its methods over two ranks (method i on rank i % 2): compare.json (times aside) and roc.svg the same.
file(WRITE ${WORK}/truth.json "{\"edges\": [\"a0.h0->logits\", \"m1->logits\", \"input->a1.h0<q>\"]}")
set(cmp --ground-truth ${WORK}/truth.json --methods eap,atp-star,exact,acdc --thresholds 0.01,0.1)
run(compare-1 ${CLI} compare ${task} ${cmp} --out ${WORK}/compare-1)
run(compare-2 ${MPIEXEC} -np 2 ${CLI} compare ${task} ${cmp} --out ${WORK}/compare-2)
foreach(file compare.json roc.svg)
  check_same_file(compare-2-${file} ${WORK}/compare-1/${file} ${WORK}/compare-2/${file})
endforeach()

# expect_failure(name text ARGS...): non-zero on every rank, with `text` on stderr.
function(expect_failure name text)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err TIMEOUT 120)
  if(rc EQUAL 0)
    message(FATAL_ERROR "${name}: succeeded, expected a failure")
  endif()
  string(FIND "${err}" "${text}" at)
  if(at EQUAL -1)
    message(FATAL_ERROR "${name}: stderr lacks '${text}':\n${err}")
  endif()
endfunction()
expect_failure(not-split "runs on one process" ${MPIEXEC} -np 2 ${CLI} forward ${task} --out ${WORK}/forward.json)
expect_failure(circuit-not-split "evaluate --circuit runs on one process" ${MPIEXEC} -np 2 ${CLI} evaluate ${task}
               --circuit ${WORK}/acdc-1/circuit-00.json --out ${WORK}/x.json)
expect_failure(bad-task "no-such-task.jsonl" ${MPIEXEC} -np 2 ${CLI} attribute --model ${M} --task ${WORK}/no-such-task.jsonl
               --method exact --out ${WORK}/x.json)
expect_failure(no-resume "checkpoints are for one process" ${MPIEXEC} -np 2 ${CLI} attribute ${task} --method exact
               --resume ${WORK}/resume --out ${WORK}/x.json)
