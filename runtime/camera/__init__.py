"""The camera side: video sources by URI, frame -> learner input, the synthetic camera, overlay, recorder."""
