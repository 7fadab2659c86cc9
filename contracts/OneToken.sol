// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";
import {Ownable} from "@openzeppelin/contracts/access/Ownable.sol";

/// @title OneToken
/// @notice ERC-20 token of a ONE creator. The platform's signer key owns it and is the only minter.
/// @dev Holders are custodial: ONE derives each buyer's address from its own custody seed and holds the
///      keys. When a token purchase saga must be compensated after the mint (payment refunded, or a later
///      step failed), the platform has to take the minted amount back without the holder signing an
///      approval — so the owner may burn from any holder. This is a deliberate trust assumption of a
///      custodial token, not a general-purpose ERC-20 `burnFrom` (which would spend an allowance).
contract OneToken is ERC20, Ownable {
    constructor(string memory name_, string memory symbol_, address initialOwner)
        ERC20(name_, symbol_)
        Ownable(initialOwner)
    {}

    /// @notice Mint `amount` tokens to `to`. Owner only.
    function mint(address to, uint256 amount) external onlyOwner {
        _mint(to, amount);
    }

    /// @notice Burn `amount` tokens held by `from`, without an allowance. Owner only.
    /// @dev Used by saga compensation to undo a mint to a custodial holder.
    function burnFrom(address from, uint256 amount) external onlyOwner {
        _burn(from, amount);
    }
}
