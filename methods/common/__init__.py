"""Building blocks shared by the methods: layers, GAN losses, R1, EMA, training guards. One copy each."""
