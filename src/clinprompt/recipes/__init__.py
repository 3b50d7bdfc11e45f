"""Recipes: readable scripts (setup → train → save) for each stage, the baselines and evaluation.

Import the recipe you need (``from clinprompt.recipes.run import run_experiment``); this package
imports nothing heavy on its own.
"""
