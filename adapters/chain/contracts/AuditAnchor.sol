// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

/// @title AuditAnchor
/// @notice Anchors checkpoints (tree size, root) of fhirledger's append-only
/// Merkle log (Keccak-256, RFC 9162 structure). Only hashes go on chain: no
/// PHI, no identifiers. Writers (the servers' anchoring accounts) append
/// checkpoints of strictly growing size; the owner manages the writers.
contract AuditAnchor {
    error NotOwner();
    error NotWriter();
    error ZeroAddress();
    error ZeroRoot();
    /// The checkpoint's size is not above the last anchored one.
    error SizeNotIncreasing(uint64 treeSize, uint64 latestSize);

    event WriterAdded(address indexed writer);
    event WriterRemoved(address indexed writer);
    event OwnershipTransferred(address indexed previousOwner, address indexed newOwner);
    event Checkpoint(uint64 indexed treeSize, bytes32 root, bytes32 previousRoot);

    // One storage slot: the owner and the last anchored size (20 + 8 bytes),
    // so a checkpoint updates the size without touching a second slot.
    address public owner;
    uint64 private latestSize;

    mapping(address => bool) private writers;
    // Root by tree size; zero where no checkpoint has that size (a zero root
    // is refused, so zero always means "none").
    mapping(uint64 => bytes32) private roots;

    constructor() {
        owner = msg.sender;
        writers[msg.sender] = true;
        emit OwnershipTransferred(address(0), msg.sender);
        emit WriterAdded(msg.sender);
    }

    modifier onlyOwner() {
        if (msg.sender != owner) revert NotOwner();
        _;
    }

    function checkpoint(uint64 treeSize, bytes32 root) external {
        if (!writers[msg.sender]) revert NotWriter();
        if (root == bytes32(0)) revert ZeroRoot();
        uint64 previous = latestSize;
        if (treeSize <= previous) revert SizeNotIncreasing(treeSize, previous);
        roots[treeSize] = root;
        latestSize = treeSize;
        emit Checkpoint(treeSize, root, roots[previous]);
    }

    function latest() external view returns (uint64 treeSize, bytes32 root) {
        treeSize = latestSize;
        root = roots[treeSize];
    }

    function rootAt(uint64 treeSize) external view returns (bytes32) {
        return roots[treeSize];
    }

    function isWriter(address account) external view returns (bool) {
        return writers[account];
    }

    function addWriter(address account) external onlyOwner {
        if (account == address(0)) revert ZeroAddress();
        if (writers[account]) return;
        writers[account] = true;
        emit WriterAdded(account);
    }

    function removeWriter(address account) external onlyOwner {
        if (!writers[account]) return;
        writers[account] = false;
        emit WriterRemoved(account);
    }

    /// One step: the new owner must be an account its operators control.
    function transferOwnership(address newOwner) external onlyOwner {
        if (newOwner == address(0)) revert ZeroAddress();
        emit OwnershipTransferred(owner, newOwner);
        owner = newOwner;
    }
}
