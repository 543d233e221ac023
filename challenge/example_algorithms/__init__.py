"""Example algorithms for the algorithm track, each a folder to zip as it is (main.py at its top; see
docs/contract.md): `baseline`, the challenge's scikit-learn baseline under the contract."""
