"""The live demo: the rules shared by both loops, the headless (scripted) loop and the window loop."""
