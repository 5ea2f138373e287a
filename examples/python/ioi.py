"""IOI with circuitry from Python, as a notebook would run it: load a model from a file, generate the task,
score every edge with EAP-IG, keep the top edges, measure the circuit's faithfulness, plot the curve.

    python examples/python/ioi.py MODEL [--n 16] [--top-n 200] [--plot ioi.png]

MODEL is a GPT-2-vocabulary model (a Hugging Face GPT-2 directory such as gpt2-small) or any model file with
a tokenizer whose IOI names are single tokens (a GGUF file such as SmolLM2-135M's)."""
import argparse
import time

import circuitry


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model")
    parser.add_argument("--n", type=int, default=16, help="IOI examples")
    parser.add_argument("--top-n", type=int, default=200, help="edges kept (before dead ends are removed)")
    parser.add_argument("--plot", help="write the faithfulness curve here (needs matplotlib)")
    args = parser.parse_args()

    model = circuitry.load_model(args.model)
    print(model)
    task = circuitry.tasks.ioi(args.n, seed=1, tokenizer=model)  # the model's own tokenizer, else GPT-2's
    tokenizer = model.tokenizer or circuitry.gpt2_tokenizer()
    first = task.examples[0]
    print("clean:    ", repr(tokenizer.decode(first["clean"])), "->", repr(tokenizer.decode(first["answer"])))
    print("corrupted:", repr(tokenizer.decode(first["corrupted"])))

    start = time.perf_counter()
    scores = circuitry.attribute(model, task, method="eap-ig", steps=5)
    print(f"eap-ig: {model.graph.n_edges} edges scored in {time.perf_counter() - start:.2f} s; "
          f"logit difference {scores.clean_metric:.4f} clean, {scores.corrupted_metric:.4f} corrupted")
    for name, score in sorted(scores.edges.items(), key=lambda kv: -abs(kv[1]))[:5]:
        print(f"  {name:24s} {score:+.5f}")

    circuit = circuitry.prune(scores, top_n=args.top_n)
    quality = circuitry.evaluate(model, task, circuit)
    print(f"top {args.top_n} edges -> {circuit.n_edges} after dead ends; faithfulness {quality.faithfulness:.4f}")

    curve = circuitry.evaluate(model, task, scores=scores)
    print(f"MIB curve: CPR {curve.cpr:.4f}, CMD {curve.cmd:.4f}")
    if args.plot:
        try:
            import matplotlib
        except ImportError:
            print("matplotlib is not installed; no plot")
            return
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        fractions = [p["fraction"] for p in curve.curve]
        plt.semilogx(fractions, [p["faithfulness"] for p in curve.curve], marker="o")
        plt.xlabel("fraction of edges")
        plt.ylabel("faithfulness")
        plt.title(f"IOI, EAP-IG top edges (CPR {curve.cpr:.3f})")
        plt.savefig(args.plot)
        print("wrote", args.plot)


if __name__ == "__main__":
    main()
