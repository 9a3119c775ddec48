"""Measures of a model: pure functions of its weights (and, for the energies, of inputs),
computed without reading or writing any file.

* :mod:`~hamixer.measures.symmetry`: how far the weights are from the symmetric (Hopfield)
  configuration, per MLP and per attention layer;
* :mod:`~hamixer.measures.layer_scores`: Saponati et al.'s symmetry and directionality scores
  of an attention layer's query–key matrix;
* :mod:`~hamixer.measures.reference`: what independent random matrices of the same shapes
  score (the chance level beside each measure);
* :mod:`~hamixer.measures.updates`: how training moved each MLP from its initial weights;
* :mod:`~hamixer.measures.iterated_energy`: a block's energy after each of its ``n_iter``
  applications.

The package sits between the models and the experiments (a checked contract, ``lint-imports``):
it imports the models and the HAM library, never the trainer, the experiments, the command line
or the run files; the experiments record, tabulate and plot what it measures.
"""
