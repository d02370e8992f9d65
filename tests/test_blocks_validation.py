"""Bad configuration raises ValueError naming the valid choices; no assert guards user input."""
import pytest

from blocks import CBAMBlock, ECABlock, SEBlock, attention_resnet


@pytest.mark.parametrize("make,message", [
    (lambda: SEBlock("mean", 54, 9), "unknown SE squeeze mode 'mean'; choose one of 'avg', 'max'"),
    (lambda: SEBlock(["avg"], 54, 9), "unknown SE squeeze mode ['avg']; choose one of 'avg', 'max'"),
    (lambda: SEBlock("avg", 8, 16), "ratio must be an integer from 1 to channels (8), got 16"),
    (lambda: SEBlock("avg", 0, 1), "channels must be a positive integer, got 0"),
    (lambda: ECABlock(54, k_size=4), "ECA k_size must be an odd positive integer (1, 3, 5, ...), got 4"),
    (lambda: ECABlock(54, gamma=0), "gamma must be positive, got 0"),
    (lambda: ECABlock(54, gamma="2"), "gamma must be a finite number, got '2'"),
    (lambda: CBAMBlock("FC", 7, channels=64, gamma=3, k_size=3),
     "gamma, k_size set the 'Conv' channel attention; the 'FC' (MLP) one takes ratio"),
    (lambda: CBAMBlock("Conv", 7, channels=64, ratio=8),
     "ratio sets the 'FC' channel attention's MLP; the 'Conv' one takes gamma and b, or k_size"),
    (lambda: ECABlock(54, b=float("inf")), "b must be a finite number, got inf"),
    (lambda: CBAMBlock("MLP", 7, channels=54, ratio=9),
     "unknown CBAM channel attention mode 'MLP'; choose one of 'FC', 'Conv'"),
    (lambda: CBAMBlock("FC", 4, channels=54, ratio=9), "unknown spatial kernel size 4; choose one of 3, 5, 7"),
    (lambda: CBAMBlock("FC", 9, channels=54, ratio=9), "unknown spatial kernel size 9; choose one of 3, 5, 7"),
    (lambda: CBAMBlock("FC", 7, ratio=9), "CBAMBlock needs channels=<number of input channels>"),
    (lambda: CBAMBlock("FC", 7, channels=4, ratio=9), "ratio must be an integer from 1 to channels (4), got 9"),
    (lambda: attention_resnet(42), "unknown ResNet depth 42; choose one of 18, 34, 50, 101, 152"),
    (lambda: attention_resnet(18, "sk"), "unknown attention 'sk'; choose one of None, 'se', 'eca', 'cbam'"),
    (lambda: attention_resnet(18, "eca", k_size=(3, 5)), "k_size needs one kernel per stage (4 values), got (3, 5)"),
    (lambda: attention_resnet(18, "se", reduction=8), "unknown option(s) reduction; valid options: ratio"),
    (lambda: attention_resnet(18, width=0), "width must be a positive integer, got 0"),
])
def test_bad_configuration_message(make, message):
    with pytest.raises(ValueError) as info:
        make()
    assert str(info.value).startswith(message)
